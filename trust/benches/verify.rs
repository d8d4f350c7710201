//! Verification cost against DESIGN §10: the full authentication check of a slice credential
//! (credential chain, caller GID chain and object GID chain, three authority levels, RSA-2048),
//! cold (cache off: every call parses and does every RSA operation) and cached (the same text
//! presented again); plus a 2008 vector credential (md5, RSA-1024) cold.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use geni_trust::{
    ChainForm, Hierarchy, Hrn, Keypair, Policy, RecordType, RightList, TrustedRoots, Verifier,
};

fn modern_slice_credential() -> (tempfile::TempDir, String, TrustedRoots) {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(dir.path());
    let site: Hrn = "planetlab.us.pl".parse().unwrap();
    h.create_authority(&site, true).unwrap();
    let user_key = Keypair::generate(2048).unwrap();
    let user = h
        .create_gid(
            &"planetlab.us.pl.alice".parse().unwrap(),
            None,
            &user_key.public_key(),
        )
        .unwrap();
    let slice_key = Keypair::generate(2048).unwrap();
    let slice = h
        .create_gid(
            &"planetlab.us.pl.s1".parse().unwrap(),
            None,
            &slice_key.public_key(),
        )
        .unwrap();
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

fn bench(c: &mut Criterion) {
    let (_dir, text, roots) = modern_slice_credential();
    let mut g = c.benchmark_group("slice_credential_rsa2048_3_levels");
    g.throughput(Throughput::Elements(1));

    g.bench_function("parse_only", |b| {
        b.iter(|| geni_trust::Credential::parse(black_box(&text)).unwrap())
    });

    let cold = Verifier::new(
        roots.clone(),
        Policy {
            cache_capacity: 0,
            ..Policy::default()
        },
    );
    cold.verify_credential_str(&text).unwrap();
    g.bench_function("cold", |b| {
        b.iter(|| cold.verify_credential_str(black_box(&text)).unwrap())
    });

    let cached = Verifier::new(roots, Policy::default());
    cached.verify_credential_str(&text).unwrap();
    g.bench_function("cached", |b| {
        b.iter(|| cached.verify_credential_str(black_box(&text)).unwrap())
    });
    g.finish();

    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/gw2008");
    if let Ok(text) =
        std::fs::read_to_string(vectors.join("cred/slice_planetlab.us.pl.testslice.cred"))
    {
        let roots = TrustedRoots::load_dir(&vectors.join("trusted_roots")).unwrap();
        let v = Verifier::new(
            roots,
            Policy {
                legacy_digests: true,
                cache_capacity: 0,
                ..Policy::default()
            },
        );
        v.verify_credential_str(&text).unwrap();
        let mut g = c.benchmark_group("slice_credential_2008_vector_md5_rsa1024");
        g.throughput(Throughput::Elements(1));
        g.bench_function("cold", |b| {
            b.iter(|| v.verify_credential_str(black_box(&text)).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
