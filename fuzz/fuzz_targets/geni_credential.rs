//! Fuzzes the GENI credential reader (`geni_trust::geni::GeniCredential`): the narrow XML tree,
//! inclusive C14N, the XML-DSig subset and the `signed-credential` schema rules, on peer text.
//! Any input must parse or fail cleanly, never panic; whatever parses has a non-empty chain with
//! unique ids, and verifying it (against the gcf root from `../../shared/vectors/geni/`, when
//! present) must also end in a verdict, not a panic. Seed the corpus with the `*.cred.xml` files
//! there.
#![no_main]

use std::sync::OnceLock;

use geni_trust::geni::{GeniCredential, Urn, is_geni_credential};
use geni_trust::{Gid, Policy, TrustedRoots, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> Option<&'static Verifier> {
    static V: OnceLock<Option<Verifier>> = OnceLock::new();
    V.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/geni/gcf/root-ch-cert.pem");
        let gid = Gid::load(std::path::Path::new(root)).ok()?;
        Some(Verifier::new(TrustedRoots::from_gids(vec![gid]).ok()?, Policy::default()))
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = is_geni_credential(text);
    if let Ok(urn) = Urn::parse(text) {
        assert_eq!(Urn::parse(&urn.to_string()).unwrap(), urn);
    }
    if let Ok(cred) = GeniCredential::parse(text) {
        let links = cred.links();
        assert!(!links.is_empty());
        for (i, l) in links.iter().enumerate() {
            assert!(links[..i].iter().all(|o| o.id() != l.id()));
        }
    }
    if let Some(v) = verifier() {
        let _ = v.verify_geni_credential_str(text);
    }
});
