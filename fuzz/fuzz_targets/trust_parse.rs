//! Fuzzes the certificate-chain parsers that read peer-supplied GIDs, credentials and tickets:
//! any text must parse or fail cleanly, never panic, and whatever parses must re-serialise to a
//! chain that parses to the same subjects. Seed the corpus with files from
//! `../../shared/vectors/gw2008/` to start from real 2008 objects.
#![no_main]

use geni_trust::{ChainForm, Credential, Gid, ObjectKind, Ticket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ObjectKind::detect(text);
    if let Ok(gid) = Gid::parse(text) {
        let again = gid.to_chain_string(ChainForm::Plain).unwrap();
        assert_eq!(Gid::parse(&again).unwrap().hrn(), gid.hrn());
    }
    if let Ok(cred) = Credential::parse(text) {
        let again = cred.to_chain_string(ChainForm::Separator).unwrap();
        assert_eq!(Credential::parse(&again).unwrap().subject(), cred.subject());
    }
    if let Ok(ticket) = Ticket::parse(text) {
        let again = ticket.to_chain_string(ChainForm::Separator).unwrap();
        assert_eq!(Ticket::parse(&again).unwrap().subject(), ticket.subject());
    }
});
