//! The two archive formats the lab speaks: newc cpio (what the kernel unpacks as an
//! initramfs) and ustar (what the guest's busybox `tar` writes onto the results disk).

use std::io::{self, Write};
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

fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Reads the regular files of a ustar/GNU tar archive, stopping at the end-of-archive
/// block (the rest of a results disk is zeros). Paths are normalised: no leading `./`
/// or `/`, and entries with `..` are refused.
pub fn read_tar(bytes: &[u8]) -> Result<Vec<TarEntry>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut long_name: Option<String> = None;
    while pos + 512 <= bytes.len() {
        let h = &bytes[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let size =
            octal(&h[124..136]).ok_or_else(|| format!("bad size field at offset {pos}"))? as usize;
        let kind = h[156];
        let mut name = cstr(&h[0..100]);
        if &h[257..262] == b"ustar" {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let data_start = pos + 512;
        let data_end = data_start
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| format!("entry {name:?} runs past the end of the archive"))?;
        let data = &bytes[data_start..data_end];
        match kind {
            b'L' => long_name = Some(cstr(data)),
            b'0' | 0 | b'7' => {
                let name = long_name.take().unwrap_or(name);
                let path = normalise(&name)?;
                if !path.as_os_str().is_empty() {
                    out.push(TarEntry {
                        path,
                        data: data.to_vec(),
                    });
                }
            }
            _ => long_name = None,
        }
        pos = data_start + size.div_ceil(512) * 512;
    }
    Ok(out)
}

fn normalise(name: &str) -> Result<PathBuf, String> {
    let mut path = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("refusing tar entry {name:?}: contains ..")),
            p => path.push(p),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
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
        let entries = read_tar(&tar).unwrap();
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
        assert!(read_tar(&tar).unwrap_err().contains(".."));
        let tar = tar_header("big", 4096, b'0');
        assert!(read_tar(&tar).unwrap_err().contains("past the end"));
        assert!(read_tar(&[0u8; 1024]).unwrap().is_empty());
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
