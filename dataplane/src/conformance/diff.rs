//! A line diff for the conformance tests' failures: the longest common subsequence of
//! the two texts' lines, then each line marked as common (`  `), only in the first
//! (`- `) or only in the second (`+ `). Read-backs are a few thousand lines at most, so
//! the quadratic table is small.

/// The lines of `a` and `b`, each marked; common runs longer than six lines are
/// elided to their first and last three.
pub fn lines(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let marked = mark(&a, &b);
    let mut out = String::new();
    let mut i = 0;
    while i < marked.len() {
        let run = marked[i..].iter().take_while(|(m, _)| *m == ' ').count();
        if run > 6 {
            for (m, l) in &marked[i..i + 3] {
                out.push_str(&format!("{m} {l}\n"));
            }
            out.push_str(&format!("  ... {} common lines ...\n", run - 6));
            for (m, l) in &marked[i + run - 3..i + run] {
                out.push_str(&format!("{m} {l}\n"));
            }
            i += run;
            continue;
        }
        let (m, l) = marked[i];
        out.push_str(&format!("{m} {l}\n"));
        i += 1;
    }
    out
}

/// Every line of `a` and `b` in order, marked ' ', '-' or '+'.
fn mark<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(('-', a[i]));
            i += 1;
        } else {
            out.push(('+', b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| ('-', *l)));
    out.extend(b[j..].iter().map(|l| ('+', *l)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_lines_are_marked_and_long_common_runs_elided() {
        assert_eq!(lines("a\nb\n", "a\nb\n"), "  a\n  b\n");
        assert_eq!(lines("a\nx\nb\n", "a\nb\ny\n"), "  a\n- x\n  b\n+ y\n");
        let common: String = (0..10).map(|i| format!("{i}\n")).collect();
        let d = lines(&format!("{common}k\n"), &format!("{common}s\n"));
        assert_eq!(
            d,
            "  0\n  1\n  2\n  ... 4 common lines ...\n  7\n  8\n  9\n- k\n+ s\n"
        );
    }
}
