//! Bad `[churn]` fields: `kpbench run` exits 2 naming the file and the field, and
//! creates nothing. No root needed: the scenario is rejected before anything runs.

use std::path::Path;
use std::process::Command;

#[test]
fn bad_churn_fields_exit_2_naming_the_field_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (tag, text, field) in [
        ("rate", "[churn]\nrate_per_s = 0\n", "churn.rate_per_s"),
        (
            "sweep",
            "[churn]\nrate_per_s = [1, 0]\n",
            "churn.rate_per_s[1]",
        ),
        (
            "sweep2",
            "[churn]\nrate_per_s = [10, 10]\n",
            "churn.rate_per_s[1]",
        ),
        ("sweep3", "[churn]\nrate_per_s = []\n", "churn.rate_per_s"),
        ("dur", "[churn]\nduration_s = -3\n", "churn.duration_s"),
        ("kind", "[churn]\nkind = \"surge\"\n", "churn.kind"),
        ("svc", "[churn]\nservices = 0\n", "churn.services"),
        (
            "bg",
            "[churn]\nbackground_rate_per_s = 1e9\n",
            "churn.background_rate_per_s",
        ),
        ("modes", "[churn]\nmodes = [\"ipvx\"]\n", "churn.modes"),
        ("unknown", "[churn]\nrates = [1]\n", "rates"),
    ] {
        let file = tmp.path().join(format!("{tag}.toml"));
        std::fs::write(&file, text).unwrap();
        let id = format!("churnin-{}-{tag}", std::process::id());
        let o = Command::new(env!("CARGO_BIN_EXE_kpbench"))
            .args(["run", file.to_str().unwrap(), "--run-id", &id])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .expect("kpbench starts");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{tag}: {err}");
        assert!(
            err.contains(field) && err.contains(file.to_str().unwrap()),
            "{tag}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(dataplane::Netns::list(&format!("kpb-{id}-")).is_empty());
        assert!(
            !Path::new(&out).exists(),
            "{tag}: {} was created",
            out.display()
        );
    }
}
