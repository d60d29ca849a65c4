//! `logseal gen-vectors`: the format's test vectors and negative fixtures
//! (made by `logseal_core::vectors`), written as files.

use std::path::PathBuf;

/// Writes the format test vectors and the negative fixtures into `out`.
pub fn write(out: PathBuf) -> anyhow::Result<()> {
    let v = crate::chain::vectors::generate();
    std::fs::create_dir_all(&out)?;
    crate::storage::fsutil::write_atomic(&out.join("chain-v1.txt"), v.text.as_bytes(), "vectors")?;
    crate::storage::fsutil::write_atomic(&out.join("chain-v1.seg"), &v.segment, "vectors")?;
    crate::storage::fsutil::write_atomic(
        &out.join("chain-v1-redacted.seg"),
        &v.redacted,
        "vectors",
    )?;
    let neg = out.join("negative");
    for f in crate::chain::vectors::negative::generate() {
        for (rel, bytes) in &f.files {
            let p = neg.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            crate::storage::fsutil::write_atomic(&p, bytes, "vectors")?;
        }
        let mut text = serde_json::to_string_pretty(&f.expected)?;
        text.push('\n');
        crate::storage::fsutil::write_atomic(
            &neg.join(crate::chain::vectors::negative::sidecar(&f)),
            text.as_bytes(),
            "vectors",
        )?;
    }
    Ok(())
}
