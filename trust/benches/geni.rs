//! GENI credential verification beside the 2008 form, in one run so that the figures compare:
//! a gcf-ch slice credential (rsa-sha1 XML signature, sha256 RSA-2048 certificates) and the
//! delegated one (alice → bob, two signatures), cold (cache off: every call parses, canonicalises
//! and does every RSA operation) and cached (the same text again); the 2008 baseline is the
//! modern-form slice credential of `benches/verify.rs` (three authority levels, RSA-2048).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use geni_trust::geni::GeniCredential;
use geni_trust::{
    ChainForm, Gid, Hierarchy, Hrn, Keypair, Policy, RecordType, RightList, TrustedRoots, Verifier,
};

fn modern_2008_slice_credential() -> (tempfile::TempDir, String, TrustedRoots) {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(dir.path());
    let site: Hrn = "planetlab.us.pl".parse().unwrap();
    h.create_authority(&site, true).unwrap();
    let gid = |name: &str| {
        let key = Keypair::generate(2048).unwrap();
        h.create_gid(&name.parse().unwrap(), None, &key.public_key())
            .unwrap()
    };
    let (user, slice) = (gid("planetlab.us.pl.alice"), gid("planetlab.us.pl.s1"));
    let cred = h
        .issue_credential(
            &user,
            &slice,
            &RightList::for_record_type(RecordType::Slice),
            false,
            30 * 86_400,
        )
        .unwrap();
    let text = cred.to_chain_string(ChainForm::Separator).unwrap();
    let root = h.authority(&"planetlab".parse().unwrap()).unwrap().gid;
    (dir, text, TrustedRoots::from_gids(vec![root]).unwrap())
}

fn verifiers(roots: &TrustedRoots) -> (Verifier, Verifier) {
    let cold = Verifier::new(
        roots.clone(),
        Policy {
            cache_capacity: 0,
            ..Policy::default()
        },
    );
    (cold, Verifier::new(roots.clone(), Policy::default()))
}

fn bench(c: &mut Criterion) {
    let (_dir, text, roots) = modern_2008_slice_credential();
    let (cold, cached) = verifiers(&roots);
    cached.verify_credential_str(&text).unwrap();
    let mut g = c.benchmark_group("credential_2008_rsa2048_3_levels");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cold", |b| {
        b.iter(|| cold.verify_credential_str(black_box(&text)).unwrap())
    });
    g.bench_function("cached", |b| {
        b.iter(|| cached.verify_credential_str(black_box(&text)).unwrap())
    });
    g.finish();

    let gcf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/geni/gcf");
    let root = Gid::load(&gcf.join("root-ch-cert.pem")).unwrap();
    let roots = TrustedRoots::from_gids(vec![root]).unwrap();
    for (group, file) in [
        ("geni_gcf_slice_credential", "fixslice-alice.cred.xml"),
        (
            "geni_gcf_delegated_credential",
            "fixslice-delegated-to-bob.cred.xml",
        ),
    ] {
        let text = std::fs::read_to_string(gcf.join(file)).unwrap();
        let (cold, cached) = verifiers(&roots);
        cached.verify_geni_credential_str(&text).unwrap();
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        g.bench_function("parse_only", |b| {
            b.iter(|| GeniCredential::parse(black_box(&text)).unwrap())
        });
        g.bench_function("cold", |b| {
            b.iter(|| cold.verify_geni_credential_str(black_box(&text)).unwrap())
        });
        g.bench_function("cached", |b| {
            b.iter(|| cached.verify_geni_credential_str(black_box(&text)).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
