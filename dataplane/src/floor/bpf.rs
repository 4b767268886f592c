//! The BPF programs kpbench ships, compiled by `build.rs` from `bpf/*.bpf.c` and
//! embedded in the binary, so the lab's kernels load the very same objects. `None`
//! when the build had no clang or libbpf headers.

/// Embeds `$OUT_DIR/<name>.bpf.o` 8-byte aligned, which the ELF parser needs and
/// `include_bytes!` alone does not promise.
#[cfg(kpbench_bpf)]
macro_rules! embedded {
    ($name:literal) => {{
        #[repr(C)]
        struct Aligned<B: ?Sized> {
            _align: [u64; 0],
            bytes: B,
        }
        static ALIGNED: &Aligned<[u8]> = &Aligned {
            _align: [],
            bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".bpf.o")),
        };
        Some(&ALIGNED.bytes)
    }};
}

/// The `ebpf` mode's socket LB (`connect4`, `getpeername4`) on Cilium's maps.
#[cfg(kpbench_bpf)]
pub const SOCKLB: Option<&[u8]> = embedded!("socklb");
/// The `ebpf-tc` mode's per-packet LB (tc programs) on the same maps.
#[cfg(kpbench_bpf)]
pub const TCLB: Option<&[u8]> = embedded!("tclb");
/// The transit probes: tc programs timing packets through the node.
#[cfg(kpbench_bpf)]
pub const TRANSIT: Option<&[u8]> = embedded!("transit");

#[cfg(not(kpbench_bpf))]
pub const SOCKLB: Option<&[u8]> = None;
#[cfg(not(kpbench_bpf))]
pub const TCLB: Option<&[u8]> = None;
#[cfg(not(kpbench_bpf))]
pub const TRANSIT: Option<&[u8]> = None;

#[cfg(test)]
mod tests {
    #[cfg(kpbench_bpf)]
    #[test]
    fn the_objects_are_embedded_aligned() {
        for obj in [super::SOCKLB, super::TCLB, super::TRANSIT] {
            let obj = obj.expect("built");
            assert_eq!(&obj[..4], b"\x7fELF");
            assert_eq!(obj.as_ptr() as usize % 8, 0);
        }
    }
}
