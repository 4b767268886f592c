//! `kpbench shape import` and `kpbench shape show` as a user runs them: the committed
//! example dump imports to the committed shape file, and bad input exits 2 naming the
//! file or object.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/shapes")
        .join(name)
}

fn kpbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(args)
        .output()
        .expect("kpbench runs")
}

fn import(dump: &Path, out: &Path) -> Output {
    kpbench(&[
        "shape",
        "import",
        dump.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_example_dump_imports_to_the_committed_shape_and_shows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shape.json");
    let dump = fixture("example-dump.json");
    let o = import(&dump, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(fixture("example-shape.json")).unwrap()
    );
    let shown = kpbench(&["shape", "show", out.to_str().unwrap()]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("types: ClusterIP 3, NodePort 1, LoadBalancer 1"),
        "{text}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_object_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("pods.json");
    std::fs::write(
        &dump,
        r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"namespace":"a","name":"p"}}]}"#,
    )
    .unwrap();
    let out = dir.path().join("s.json");
    let o = import(&dump, &out);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("pods.json: items[0] (Pod a/p)")
            && e.contains("kubectl get services,endpointslices -A -o json"),
        "{e}"
    );
    assert!(!out.exists(), "nothing is written for a bad dump");

    let o = kpbench(&["shape", "show", dump.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pods.json: not a shape file"),
        "{}",
        stderr(&o)
    );

    let o = kpbench(&["shape", "show", "/nonexistent/shape.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/shape.json: cannot read"));

    let o = kpbench(&["run", "--shape", dump.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--shape"), "{}", stderr(&o));
}
