//! Provider habits that no catalog field can say. Each quirk is one module named as the
//! catalog entries name it (`quirks = ["slack_ok_envelope"]`); the catalog refuses a name that
//! has no module here (`latchkey_core::catalog::KNOWN_QUIRKS`).

pub mod mailchimp_metadata;
pub mod slack_ok_envelope;

#[cfg(test)]
mod tests {
    #[test]
    fn every_known_quirk_has_a_module() {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/quirks");
        for q in latchkey_core::catalog::KNOWN_QUIRKS {
            assert!(
                here.join(format!("{q}.rs")).exists(),
                "quirk {q} has no module"
            );
        }
    }
}
