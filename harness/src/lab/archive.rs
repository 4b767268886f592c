//! The two archive formats the lab speaks: newc cpio (what the kernel unpacks as an
//! initramfs; written here, a few lines for a fixed, tiny subset) and ustar (what the
//! guest's busybox `tar` writes onto the results disk; read with the `tar` crate).

use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes a newc ("070701") cpio archive. Entries are owned by root with mtime 0, so
/// the same tree gives the same bytes.
pub struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            ino: 1,
            written: 0,
        }
    }

    fn header(&mut self, name: &str, mode: u32, size: usize, nlink: u32) -> io::Result<()> {
        let ino = self.ino;
        self.ino += 1;
        let header = format!(
            "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            0, 0, 0, 0, 0, 0, 0, name.len() + 1, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    /// A directory; `name` is relative to the archive root, e.g. `usr/bin`.
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.header(name, 0o040000 | (perm & 0o7777), 0, 2)
    }

    /// A regular file with the given contents.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.header(name, 0o100000 | (perm & 0o7777), data.len(), 1)?;
        self.put(data)?;
        self.pad()
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.header(name, 0o120777, target.len(), 1)?;
        self.put(target.as_bytes())?;
        self.pad()
    }

    /// Adds a directory tree from disk (symlinks stay links), sorted by name.
    pub fn tree(&mut self, root: &Path) -> io::Result<()> {
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let mut entries: Vec<_> =
                std::fs::read_dir(root.join(&rel))?.collect::<Result<Vec<_>, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            let mut subdirs = Vec::new();
            for e in entries {
                let rel = rel.join(e.file_name());
                let name = rel.to_string_lossy().into_owned();
                let meta = std::fs::symlink_metadata(e.path())?;
                let perm = meta.permissions().mode();
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(e.path())?;
                    self.symlink(&name, &target.to_string_lossy())?;
                } else if meta.is_dir() {
                    self.dir(&name, perm)?;
                    subdirs.push(rel);
                } else if meta.is_file() {
                    let data = std::fs::read(e.path())?;
                    self.file(&name, meta.mode(), &data)?;
                }
            }
            // Depth first, in name order.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Writes the trailer and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, 1)?;
        let n = (512 - (self.written % 512) as usize) % 512;
        self.put(&vec![0u8; n])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One regular file read from a tar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: PathBuf,
    pub data: Vec<u8>,
}

/// Why a results archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading the tar archive: {0}")]
    Io(#[from] io::Error),
    #[error("the archive ends inside {path:?} ({got} of {size} bytes)")]
    Truncated { path: String, size: u64, got: u64 },
    #[error("refusing tar entry {0:?}: contains ..")]
    UnsafePath(String),
    #[error("the console's base64 results do not decode: {0}")]
    Base64(#[from] data_encoding::DecodeError),
}

/// Reads the regular files of a ustar/GNU tar archive (GNU long names included),
/// stopping at the end-of-archive block: the rest of a results disk is zeros and is
/// never read. Paths are normalised: no leading `./` or `/`, and entries with `..` are
/// refused.
pub fn read_tar(archive: impl Read) -> Result<Vec<TarEntry>, ArchiveError> {
    let mut archive = tar::Archive::new(archive);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = normalise(&name)?;
        if path.as_os_str().is_empty() {
            continue;
        }
        let size = entry.size();
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 30));
        entry.read_to_end(&mut data)?;
        if data.len() as u64 != size {
            return Err(ArchiveError::Truncated {
                path: name,
                size,
                got: data.len() as u64,
            });
        }
        out.push(TarEntry { path, data });
    }
    Ok(out)
}

fn normalise(name: &str) -> Result<PathBuf, ArchiveError> {
    let mut path = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(ArchiveError::UnsafePath(name.to_string())),
            p => path.push(p),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as busybox tar writes it (ustar magic, checksum over the block with
    /// the checksum field as spaces).
    fn tar_header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(512) * 512, 0);
        v
    }

    #[test]
    fn reads_files_and_long_names() {
        let long = format!("out/{}/results.json", "r".repeat(120));
        let mut tar = tar_header("./out/", 0, b'5');
        tar.extend(tar_header("./out/results.json", 5, b'0'));
        tar.extend(padded(b"{...}"));
        tar.extend(tar_header("././@LongLink", long.len() + 1, b'L'));
        tar.extend(padded(format!("{long}\0").as_bytes()));
        tar.extend(tar_header("truncated", 3, b'0'));
        tar.extend(padded(b"abc"));
        tar.extend(vec![0u8; 4096]);
        let entries = read_tar(&tar[..]).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, PathBuf::from("out/results.json"));
        assert_eq!(entries[0].data, b"{...}");
        assert_eq!(entries[1].path, PathBuf::from(long));
        assert_eq!(entries[1].data, b"abc");
    }

    #[test]
    fn refuses_parent_paths_and_truncation() {
        let mut tar = tar_header("../etc/passwd", 1, b'0');
        tar.extend(padded(b"x"));
        let e = read_tar(&tar[..]).unwrap_err();
        assert!(matches!(e, ArchiveError::UnsafePath(_)), "{e}");
        let tar = tar_header("big", 4096, b'0');
        let e = read_tar(&tar[..]).unwrap_err();
        assert!(matches!(e, ArchiveError::Truncated { .. }), "{e}");
        assert!(read_tar(&[0u8; 1024][..]).unwrap().is_empty());
    }

    #[test]
    fn reading_stops_at_the_end_of_archive_block() {
        /// A results disk: the archive, then zeros, then bytes that must not be read.
        struct Disk {
            data: Vec<u8>,
            pos: usize,
        }
        impl Read for Disk {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                assert!(
                    self.pos < self.data.len(),
                    "read past the end-of-archive block"
                );
                let n = buf.len().min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
        let mut data = tar_header("out/a", 2, b'0');
        data.extend(padded(b"hi"));
        data.extend(vec![0u8; 1024]);
        let entries = read_tar(Disk { data, pos: 0 }).unwrap();
        assert_eq!(entries[0].data, b"hi");
    }

    #[test]
    fn cpio_layout_is_newc() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("lab", 0o755).unwrap();
        w.file("lab/cmd.sh", 0o644, b"echo hi\n").unwrap();
        w.symlink("bin", "usr/bin").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        assert!(bytes.starts_with(b"070701"));
        // Header (110) + "lab\0" (4) = 114, padded to 116.
        assert_eq!(&bytes[116..122], b"070701");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("lab/cmd.sh\0"));
        assert!(text.contains("echo hi\n"));
        assert!(text.contains("TRAILER!!!"));
        // Mode of the symlink entry.
        assert!(text.contains("0000A1FF"));
    }
}
