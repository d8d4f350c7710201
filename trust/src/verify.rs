//! The verifier: the one place that decides whether a GID, credential or ticket is believed, and
//! the only code that can construct [`VerifiedGid`], [`VerifiedCredential`] and
//! [`VerifiedTicket`].
//!
//! It applies every rule of DESIGN §3 and never skips one (2008 verified nothing when its roots
//! directory was empty, and *returned* rather than raised when a parent had not signed): each
//! certificate is signed by its parent's key and names it as issuer; dates hold at every level;
//! the chain reaches a trusted root whose hrn is an authority of the object; GID parents are
//! dot-aware authorities of their children; credential parents carry the delegate bit, cover the
//! child's rights, outlive it and hold authority over its object; tickets follow the same chain
//! rules and may name the one node they are for. A digest policy refuses md5 and sha1 unless
//! `legacy_digests` is on.
//!
//! Verdicts on GIDs and credentials are cached by a digest of the whole chain's canonical encoding
//! (one leaf can be valid under one parent and not under another; the presented text is never
//! kept, so leading junk or reformatting cannot multiply entries) until the earliest expiry in the
//! chain, in a cache bounded in entries and in bytes, so a repeat caller costs no RSA operation.
//! In front of it, the exact texts that earned a live verdict map to their digest (a seeded fast
//! hash and a byte-for-byte compare, bounded in bytes), so a caller presenting the same bytes
//! again costs one hash, one compare and one lookup rather than canonicalising and SHA-256-hashing
//! the whole chain. Tickets are not cached: each is redeemed once.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cert::{Certificate, DigestClass, WordHasher, chain_digest, format_utc};
use crate::gid::Chained;
use crate::{
    Credential, Gid, Hrn, MAX_CHAIN_LEN, PublicKey, Right, RightList, Ticket, TrustError,
    TrustedRoots, VerifyError,
};

/// What the verifier accepts beyond the fixed rules. Defaults deny what they can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Accept md5 and sha1 signatures (every 2008 object is md5). Off by default.
    pub legacy_digests: bool,
    /// Smallest RSA key accepted anywhere in a chain. 1024 by default: every 2008 key is 1024-bit,
    /// and the digest policy is what keeps 2008 objects out unless an operator lets them in.
    pub min_rsa_bits: u32,
    /// Tolerance for clocks that disagree, applied to notBefore and notAfter.
    pub clock_skew_secs: i64,
    /// Most verdicts kept in the cache.
    pub cache_capacity: usize,
    /// Accept rsa-sha1 signatures and sha1 digests in GENI credentials. On by default: gcf, SFA
    /// and every xmlsec1 template sign that way, so a verifier without it verifies no GENI
    /// credential in the wild. Certificates stay under `legacy_digests`.
    pub xml_dsig_sha1: bool,
    /// Most memory the cached verdicts may keep alive, in bytes (estimated from their GID
    /// chains). The texts that map to them (the repeat caller's fast path) may hold a quarter of
    /// this again.
    pub cache_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            legacy_digests: false,
            min_rsa_bits: 1024,
            clock_skew_secs: 300,
            cache_capacity: 256,
            xml_dsig_sha1: true,
            cache_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The verifier's notion of now, replaceable in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch, UTC.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A GID whose chain reached a trusted root under the verifier's policy.
#[derive(Debug, Clone)]
pub struct VerifiedGid {
    gid: Gid,
    root: Hrn,
    expires: i64,
}

/// A credential that verified, together with its verified caller and object GIDs.
#[derive(Debug, Clone)]
pub struct VerifiedCredential(Arc<CredentialVerdict>);

#[derive(Debug)]
struct CredentialVerdict {
    subject: String,
    root: Hrn,
    /// The key that signed the credential's own certificate.
    issuer_key: PublicKey,
    caller: VerifiedGid,
    object: VerifiedGid,
    privileges: RightList,
    delegate: bool,
    expires: i64,
    /// What a GENI credential adds (`None` for the 2008 form).
    geni: Option<GeniVerdict>,
}

/// A ticket that verified, together with its verified caller and object GIDs.
#[derive(Debug, Clone)]
pub struct VerifiedTicket(Arc<TicketVerdict>);

#[derive(Debug)]
struct TicketVerdict {
    ticket: Ticket,
    root: Hrn,
    caller: VerifiedGid,
    object: VerifiedGid,
    expires: i64,
}

/// Checks objects against a set of trusted roots.
#[derive(Debug)]
pub struct Verifier {
    roots: RwLock<Arc<TrustedRoots>>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
    /// Seeds the remembered texts' hash, outside the lock: a text is hashed before it is taken.
    /// Random per verifier, so nobody can choose texts that collide.
    text_hasher: foldhash::quality::RandomState,
}

#[derive(Debug, Clone)]
enum Verdict {
    Credential(VerifiedCredential),
    Gid(VerifiedGid),
    /// A chain that did not verify, kept for [`REFUSAL_TTL_SECS`]: the same forged chain sent
    /// 64 times in one multicall costs one verification, not 64.
    Refused(VerifyError),
}

/// How long a refusal is remembered. Short: a chain refused as not yet valid may become valid.
const REFUSAL_TTL_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Credential,
    Gid,
}

/// Verdicts by the digest of the chain they were given for ([`chain_digest`]: the certificates'
/// canonical encoding, never the presented text, so junk or reformatting cannot make copies), with
/// their expiry and what they cost in memory.
#[derive(Debug)]
struct CacheMap<V> {
    entries: HashMap<[u8; 32], CacheEntry<V>>,
    bytes: usize,
}

#[derive(Debug)]
struct CacheEntry<V> {
    verdict: V,
    expires: i64,
    bytes: usize,
}

impl<V> Default for CacheMap<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<V> CacheMap<V> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, digest: &[u8; 32]) -> Option<&CacheEntry<V>> {
        self.entries.get(digest)
    }

    fn insert(&mut self, digest: [u8; 32], verdict: V, expires: i64, bytes: usize) {
        let entry = CacheEntry {
            verdict,
            expires,
            bytes,
        };
        if let Some(old) = self.entries.insert(digest, entry) {
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
        self.bytes += bytes;
    }

    fn retain_live(&mut self, now: i64) {
        let mut bytes = 0;
        self.entries.retain(|_, e| {
            let live = e.expires >= now;
            if live {
                bytes += e.bytes;
            }
            live
        });
        self.bytes = bytes;
    }

    /// Drops one entry (which one does not matter: the cache only saves work, never decides).
    fn evict_one(&mut self) {
        let Some(&key) = self.entries.keys().next() else {
            return;
        };
        if let Some(old) = self.entries.remove(&key) {
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// One map per kind: a GID and a credential never share a verdict.
#[derive(Debug, Default)]
struct Cache {
    credentials: CacheMap<Verdict>,
    gids: CacheMap<Verdict>,
    texts: Texts,
}

/// How a text's digest is computed: a PEM chain's ([`chain_digest`]) or a GENI document's. Part
/// of a remembered text's identity, so the same bytes read as the other form never share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Chain,
    Geni,
}

/// Presented texts that earned a live verdict, by a seeded hash of their bytes, each with its
/// form and digest. A hit needs the same form and the same bytes (compared in full), so the map
/// only saves the digest's work and never decides; entries whose verdict has gone are dropped
/// first when it is full, then any.
#[derive(Debug, Default)]
struct Texts {
    entries: HashMap<u64, Vec<TextEntry>, BuildHasherDefault<WordHasher>>,
    bytes: usize,
}

#[derive(Debug)]
struct TextEntry {
    text: Box<str>,
    form: Form,
    digest: [u8; 32],
}

/// What one remembered text costs beyond its bytes.
const TEXT_OVERHEAD: usize = 96;

impl Texts {
    fn get(&self, hash: u64, form: Form, text: &str) -> Option<[u8; 32]> {
        self.entries
            .get(&hash)?
            .iter()
            .find(|e| e.form == form && *e.text == *text)
            .map(|e| e.digest)
    }

    /// Remembers `text`, making room within `budget` bytes: first by forgetting texts whose
    /// verdict is gone (`live` says which are not), then any.
    fn insert(
        &mut self,
        hash: u64,
        entry: TextEntry,
        budget: usize,
        live: impl Fn(&[u8; 32]) -> bool,
    ) {
        let bytes = entry.text.len() + TEXT_OVERHEAD;
        if bytes > budget || self.get(hash, entry.form, &entry.text).is_some() {
            return;
        }
        if self.bytes + bytes > budget {
            self.retain(|e| live(&e.digest));
        }
        while self.bytes + bytes > budget {
            let Some(&key) = self.entries.keys().next() else {
                break;
            };
            if let Some(gone) = self.entries.remove(&key) {
                let freed: usize = gone.iter().map(|e| e.text.len() + TEXT_OVERHEAD).sum();
                self.bytes = self.bytes.saturating_sub(freed);
            }
        }
        self.entries.entry(hash).or_default().push(entry);
        self.bytes += bytes;
    }

    fn retain(&mut self, keep: impl Fn(&TextEntry) -> bool) {
        let mut bytes = 0;
        self.entries.retain(|_, list| {
            list.retain(|e| keep(e));
            bytes += list
                .iter()
                .map(|e| e.text.len() + TEXT_OVERHEAD)
                .sum::<usize>();
            !list.is_empty()
        });
        self.bytes = bytes;
    }

    fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

impl Cache {
    fn map(&mut self, kind: Kind) -> &mut CacheMap<Verdict> {
        match kind {
            Kind::Credential => &mut self.credentials,
            Kind::Gid => &mut self.gids,
        }
    }

    fn bytes(&self) -> usize {
        self.credentials.bytes + self.gids.bytes
    }

    fn clear(&mut self) {
        self.credentials.clear();
        self.gids.clear();
        self.texts.clear();
    }
}

/// What a verdict keeps alive, roughly: its GID chains (OpenSSL's parsed form is about three
/// times the DER) plus a fixed overhead.
fn verdict_bytes(gids: &[&Gid]) -> usize {
    let der: usize = gids
        .iter()
        .map(|g| {
            std::iter::successors(Some(*g), |g| g.parent())
                .map(|g| g.certificate().der().len())
                .sum::<usize>()
        })
        .sum();
    512 + 3 * der
}

// === impl Verifier ===

impl Verifier {
    pub fn new(roots: TrustedRoots, policy: Policy) -> Self {
        Self::with_clock(roots, policy, Arc::new(SystemClock))
    }

    pub fn with_clock(roots: TrustedRoots, policy: Policy, clock: Arc<dyn Clock>) -> Self {
        Self {
            roots: RwLock::new(Arc::new(roots)),
            policy,
            clock,
            cache: Mutex::new(Cache::default()),
            text_hasher: foldhash::quality::RandomState::default(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn roots(&self) -> Arc<TrustedRoots> {
        Arc::clone(&self.roots.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Swaps in a new set of roots (a SIGHUP reload) and forgets every cached verdict.
    pub fn replace_roots(&self, roots: TrustedRoots) {
        *self.roots.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(roots);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Parses and verifies a GID chain.
    pub fn verify_gid_str(&self, text: &str) -> Result<VerifiedGid, TrustError> {
        let (digest, verdict) = self.lookup(Kind::Gid, Form::Chain, text);
        match verdict {
            Some(Verdict::Gid(v)) => return Ok(v),
            Some(Verdict::Refused(e)) => return Err(e.into()),
            _ => {}
        }
        let gid = Gid::parse(text).map_err(over_budget)?;
        let verified = self
            .verify_gid(&gid)
            .map_err(over_budget_verify)
            .inspect_err(|e| self.remember_refusal(Kind::Gid, digest, e))?;
        if let Some(d) = digest {
            let bytes = verdict_bytes(&[&verified.gid]);
            let verdict = Verdict::Gid(verified.clone());
            let text = Some((Form::Chain, text));
            self.remember(Kind::Gid, d, verdict, verified.expires, bytes, text);
        }
        Ok(verified)
    }

    /// Verifies a parsed GID chain.
    pub fn verify_gid(&self, gid: &Gid) -> Result<VerifiedGid, VerifyError> {
        self.verify_gid_in(
            gid,
            &self.roots(),
            self.clock.now(),
            &mut Checked::default(),
        )
    }

    fn verify_gid_in(
        &self,
        gid: &Gid,
        roots: &TrustedRoots,
        now: i64,
        checked: &mut Checked,
    ) -> Result<VerifiedGid, VerifyError> {
        let (root, expires, _) =
            self.verify_links(gid, roots, now, gid.hrn(), checked, |child, parent| {
                if parent.hrn().is_authority_of(child.hrn()) {
                    Ok(())
                } else {
                    Err(VerifyError::HrnNotUnderParent {
                        subject: child.hrn().to_string(),
                        parent: parent.hrn().to_string(),
                    })
                }
            })?;
        Ok(VerifiedGid {
            gid: gid.clone(),
            root,
            expires,
        })
    }

    /// Parses and verifies a credential and its caller and object GIDs.
    pub fn verify_credential_str(&self, text: &str) -> Result<VerifiedCredential, TrustError> {
        self.verify_credential_checked(text, |_| Ok::<(), TrustError>(()))
    }

    /// The cached verdict on `text`, if there is a live one: no parse, no RSA. A caller that
    /// wants to spend verification elsewhere (a blocking pool) asks this first.
    pub fn cached_credential(&self, text: &str) -> Option<VerifiedCredential> {
        match self.lookup(Kind::Credential, Form::Chain, text).1 {
            Some(Verdict::Credential(v)) => Some(v),
            _ => None,
        }
    }

    /// [`Verifier::verify_credential_str`] with `precheck` run on the parsed, unverified
    /// credential before any signature is checked: the cheap checks first (the TLS peer holds
    /// the caller GID's key), so that a caller who fails them costs no RSA operation and leaves
    /// nothing in the cache. A cached verdict is returned without running `precheck`; the caller
    /// checks the verdict as it would a fresh one.
    pub fn verify_credential_checked<E: From<TrustError>>(
        &self,
        text: &str,
        precheck: impl FnOnce(&Credential) -> Result<(), E>,
    ) -> Result<VerifiedCredential, E> {
        let (digest, verdict) = self.lookup(Kind::Credential, Form::Chain, text);
        match verdict {
            Some(Verdict::Credential(v)) => return Ok(v),
            Some(Verdict::Refused(e)) => return Err(E::from(e.into())),
            _ => {}
        }
        let cred = Credential::parse(text).map_err(over_budget)?;
        precheck(&cred)?;
        let verified = self
            .verify_credential(&cred)
            .map_err(over_budget_verify)
            .inspect_err(|e| self.remember_refusal(Kind::Credential, digest, e))
            .map_err(|e| E::from(TrustError::from(e)))?;
        if let Some(d) = digest {
            let bytes = verdict_bytes(&[verified.caller().gid(), verified.object().gid()]);
            let verdict = Verdict::Credential(verified.clone());
            let text = Some((Form::Chain, text));
            self.remember(
                Kind::Credential,
                d,
                verdict,
                verified.0.expires,
                bytes,
                text,
            );
        }
        Ok(verified)
    }

    /// Verifies a parsed credential: its own chain, then its caller's and object's GID chains.
    pub fn verify_credential(&self, cred: &Credential) -> Result<VerifiedCredential, VerifyError> {
        let subject = cred.subject().to_owned();
        let caller = cred.caller().ok_or_else(|| VerifyError::MissingCallerGid {
            subject: subject.clone(),
        })?;
        let object = cred.object().ok_or_else(|| VerifyError::MissingObjectGid {
            subject: subject.clone(),
        })?;
        let roots = self.roots();
        let now = self.clock.now();
        let skew = self.policy.clock_skew_secs;
        let mut checked = Checked::default();
        let (root, chain_expires, issuer_key) = self.verify_links(
            cred,
            &roots,
            now,
            object.hrn(),
            &mut checked,
            |child, parent| {
                let child_subject = child.subject().to_owned();
                if !parent.delegate() {
                    return Err(missing_delegate_bit(
                        child.certificate(),
                        child.caller(),
                        parent.certificate(),
                        parent.caller(),
                    ));
                }
                if !parent.privileges().is_superset(child.privileges()) {
                    return Err(VerifyError::RightsEscalation {
                        subject: child_subject,
                        rights: child.privileges().to_string(),
                        parent: parent.subject().to_owned(),
                        parent_rights: parent.privileges().to_string(),
                    });
                }
                outlives_check(child.certificate(), parent.certificate(), skew)?;
                object_scope_check(&child_subject, child.object(), parent.object())
            },
        )?;
        let caller = self.verify_gid_in(caller, &roots, now, &mut checked)?;
        let object = self.verify_gid_in(object, &roots, now, &mut checked)?;
        let expires = chain_expires.min(caller.expires).min(object.expires);
        Ok(VerifiedCredential(Arc::new(CredentialVerdict {
            subject,
            root,
            issuer_key,
            caller,
            object,
            privileges: cred.privileges().clone(),
            delegate: cred.delegate(),
            expires,
            geni: None,
        })))
    }

    /// Parses and verifies a ticket; `node` is this node's hrn, checked against the ticket's
    /// target when it names one.
    pub fn verify_ticket_str(
        &self,
        text: &str,
        node: Option<&Hrn>,
    ) -> Result<VerifiedTicket, TrustError> {
        // Not cached: a ticket is redeemed once, and caching each one cost hundreds of
        // kilobytes per sliver.
        let ticket = Ticket::parse(text).map_err(over_budget)?;
        Ok(self
            .verify_ticket(&ticket, node)
            .map_err(over_budget_verify)?)
    }

    /// Verifies a parsed ticket (see [`Verifier::verify_ticket_str`]).
    pub fn verify_ticket(
        &self,
        ticket: &Ticket,
        node: Option<&Hrn>,
    ) -> Result<VerifiedTicket, VerifyError> {
        let verified = self.verify_ticket_chain(ticket)?;
        target_check(ticket, node)?;
        Ok(verified)
    }

    fn verify_ticket_chain(&self, ticket: &Ticket) -> Result<VerifiedTicket, VerifyError> {
        let subject = ticket.subject().to_owned();
        let caller = ticket
            .caller()
            .ok_or_else(|| VerifyError::MissingCallerGid {
                subject: subject.clone(),
            })?;
        let object = ticket
            .object()
            .ok_or_else(|| VerifyError::MissingObjectGid {
                subject: subject.clone(),
            })?;
        let roots = self.roots();
        let now = self.clock.now();
        let skew = self.policy.clock_skew_secs;
        let mut checked = Checked::default();
        let (root, chain_expires, _) = self.verify_links(
            ticket,
            &roots,
            now,
            object.hrn(),
            &mut checked,
            |child, parent| {
                if !parent.delegate() {
                    return Err(missing_delegate_bit(
                        child.certificate(),
                        child.caller(),
                        parent.certificate(),
                        parent.caller(),
                    ));
                }
                authority_ticket_check(child, parent)?;
                outlives_check(child.certificate(), parent.certificate(), skew)?;
                object_scope_check(child.subject(), child.object(), parent.object())
            },
        )?;
        let caller = self.verify_gid_in(caller, &roots, now, &mut checked)?;
        let object = self.verify_gid_in(object, &roots, now, &mut checked)?;
        let expires = chain_expires.min(caller.expires).min(object.expires);
        Ok(VerifiedTicket(Arc::new(TicketVerdict {
            ticket: ticket.clone(),
            root,
            caller,
            object,
            expires,
        })))
    }

    /// The chain walk shared by every kind: from the leaf up, each certificate must pass the
    /// policy and its dates; the walk ends at the first certificate a trusted root signed (the
    /// root's hrn must be an authority of `leaf_hrn`), and every link below that must name its
    /// parent as issuer, carry its signature, and pass `link`. Returns the root's hrn, the
    /// earliest notAfter seen, and the key that signed the leaf (its parent's, or the root's).
    fn verify_links<T: Chained>(
        &self,
        obj: &T,
        roots: &TrustedRoots,
        now: i64,
        leaf_hrn: &Hrn,
        checked: &mut Checked,
        link: impl Fn(&T, &T) -> Result<(), VerifyError>,
    ) -> Result<(Hrn, i64, PublicKey), VerifyError> {
        let links = obj.links();
        if links.len() > MAX_CHAIN_LEN {
            return Err(VerifyError::ChainTooLong {
                subject: obj.cert().subject().to_owned(),
                limit: MAX_CHAIN_LEN,
            });
        }
        let mut expires = i64::MAX;
        for (i, child) in links.iter().enumerate() {
            let cert = child.cert();
            self.check_certificate(cert, now)?;
            expires = expires.min(cert.validity().not_after);
            if let Some(root) = checked.signer_of(roots, cert) {
                let root_cert = root.certificate();
                self.check_root(root_cert, now)?;
                if !root.hrn().is_authority_or_self(leaf_hrn) {
                    return Err(VerifyError::RootNotAuthority {
                        root: root.hrn().to_string(),
                        hrn: leaf_hrn.to_string(),
                    });
                }
                let leaf_signer = match links.get(1) {
                    Some(parent) if i > 0 => parent.cert().public_key(),
                    _ => root.public_key(),
                };
                return Ok((
                    root.hrn().clone(),
                    expires.min(root_cert.validity().not_after),
                    leaf_signer.clone(),
                ));
            }
            let Some(parent) = links.get(i + 1) else {
                return Err(VerifyError::UntrustedRoot {
                    subject: cert.subject().to_owned(),
                });
            };
            let parent_cert = parent.cert();
            if cert.issuer() != parent_cert.subject() {
                return Err(VerifyError::IssuerMismatch {
                    subject: cert.subject().to_owned(),
                    issuer: cert.issuer().to_owned(),
                    parent: parent_cert.subject().to_owned(),
                });
            }
            if !checked.is_signed_by(cert, parent_cert) {
                return Err(VerifyError::NotSignedByParent {
                    subject: cert.subject().to_owned(),
                    parent: parent_cert.subject().to_owned(),
                });
            }
            link(child, parent)?;
        }
        // `links` is never empty (it starts with `obj`), so the loop always returns.
        Err(VerifyError::UntrustedRoot {
            subject: obj.cert().subject().to_owned(),
        })
    }

    /// Digest, key size and dates of one certificate in a chain.
    fn check_certificate(&self, cert: &Certificate, now: i64) -> Result<(), VerifyError> {
        let subject = || cert.subject().to_owned();
        match cert.digest_class() {
            DigestClass::Strong => {}
            DigestClass::Legacy if self.policy.legacy_digests => {}
            DigestClass::Legacy | DigestClass::Unsupported => {
                return Err(VerifyError::WeakDigest {
                    subject: subject(),
                    algorithm: cert.signature_algorithm().to_owned(),
                });
            }
        }
        self.check_key_and_dates(cert, now)
    }

    /// A root is trusted by configuration, so its own signature is not judged; its key and dates
    /// are.
    fn check_root(&self, cert: &Certificate, now: i64) -> Result<(), VerifyError> {
        self.check_key_and_dates(cert, now)
    }

    fn check_key_and_dates(&self, cert: &Certificate, now: i64) -> Result<(), VerifyError> {
        let subject = || cert.subject().to_owned();
        let bits = cert.public_key().bits();
        if bits < self.policy.min_rsa_bits {
            return Err(VerifyError::WeakKey {
                subject: subject(),
                bits,
                min: self.policy.min_rsa_bits,
            });
        }
        let v = cert.validity();
        let skew = self.policy.clock_skew_secs;
        if now.saturating_add(skew) < v.not_before {
            return Err(VerifyError::NotYetValid {
                subject: subject(),
                not_before: format_utc(v.not_before),
            });
        }
        if now.saturating_sub(skew) > v.not_after {
            return Err(VerifyError::Expired {
                subject: subject(),
                not_after: format_utc(v.not_after),
            });
        }
        Ok(())
    }

    /// The digest of `text` read as `form`, and the live verdict of `kind` for it if there is
    /// one. Bytes remembered earlier cost one seeded hash and one compare; other text is digested
    /// in full (outside the lock) and, if that finds a live verdict, remembered, so that a
    /// reformatted copy of a cached chain is fast from its second time on. `None` for text that
    /// is not a well-formed chain (a parse then says why).
    fn lookup(&self, kind: Kind, form: Form, text: &str) -> (Option<[u8; 32]>, Option<Verdict>) {
        let hash = self.text_hasher.hash_one(text);
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(digest) = cache.texts.get(hash, form, text) {
                return (Some(digest), self.live(&cache, kind, &digest));
            }
        }
        let digest = match form {
            Form::Chain => chain_digest(text),
            Form::Geni => Some(geni::geni_digest(text)),
        };
        let Some(digest) = digest else {
            return (None, None);
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let verdict = self.live(&cache, kind, &digest);
        if matches!(verdict, Some(Verdict::Credential(_) | Verdict::Gid(_))) {
            self.remember_text(&mut cache, hash, form, text, digest);
        }
        (Some(digest), verdict)
    }

    fn live(&self, cache: &Cache, kind: Kind, digest: &[u8; 32]) -> Option<Verdict> {
        let now = self.clock.now();
        let map = match kind {
            Kind::Credential => &cache.credentials,
            Kind::Gid => &cache.gids,
        };
        let entry = map.get(digest)?;
        let live = match entry.verdict {
            // Also not if the clock went back past when it was made (it may say "expired").
            Verdict::Refused(_) => {
                (entry.expires.saturating_sub(REFUSAL_TTL_SECS)..=entry.expires).contains(&now)
            }
            _ => now.saturating_sub(self.policy.clock_skew_secs) <= entry.expires,
        };
        live.then(|| entry.verdict.clone())
    }

    /// Remembers that `text` (read as `form`) has `digest`, within a quarter of the cache's byte
    /// budget.
    fn remember_text(
        &self,
        cache: &mut Cache,
        hash: u64,
        form: Form,
        text: &str,
        digest: [u8; 32],
    ) {
        let entry = TextEntry {
            text: Box::from(text),
            form,
            digest,
        };
        let budget = self.policy.cache_bytes / 4;
        let (credentials, gids) = (&cache.credentials, &cache.gids);
        let live = |d: &[u8; 32]| credentials.get(d).is_some() || gids.get(d).is_some();
        cache.texts.insert(hash, entry, budget, live);
    }

    /// Caches `verdict` for `digest` (and, for a verdict that believes something, the exact
    /// `text` it was read from).
    fn remember(
        &self,
        kind: Kind,
        digest: [u8; 32],
        verdict: Verdict,
        expires: i64,
        bytes: usize,
        text: Option<(Form, &str)>,
    ) {
        let (capacity, budget) = (self.policy.cache_capacity, self.policy.cache_bytes);
        if capacity == 0 || bytes > budget {
            return;
        }
        let now = self.clock.now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.map(kind).len() >= capacity || cache.bytes() + bytes > budget {
            cache.credentials.retain_live(now);
            cache.gids.retain_live(now);
        }
        // Still full of live verdicts: drop some; the cache only saves work, never decides.
        while cache.map(kind).len() >= capacity
            || (cache.bytes() + bytes > budget && cache.map(kind).len() > 0)
        {
            cache.map(kind).evict_one();
        }
        if cache.bytes() + bytes > budget {
            // The other kind holds the budget.
            let other = match kind {
                Kind::Credential => Kind::Gid,
                Kind::Gid => Kind::Credential,
            };
            while cache.bytes() + bytes > budget && cache.map(other).len() > 0 {
                cache.map(other).evict_one();
            }
        }
        cache.map(kind).insert(digest, verdict, expires, bytes);
        if let Some((form, text)) = text {
            let hash = self.text_hasher.hash_one(text);
            self.remember_text(&mut cache, hash, form, text, digest);
        }
    }

    /// Caches a refusal, unless it was the request's work budget that ran out: the same chain
    /// may verify in a request with budget left.
    fn remember_refusal(&self, kind: Kind, digest: Option<[u8; 32]>, error: &VerifyError) {
        if matches!(error, VerifyError::WorkLimit { .. }) {
            return;
        }
        if let Some(d) = digest {
            let expires = self.clock.now().saturating_add(REFUSAL_TTL_SECS);
            let bytes = 256 + error.to_string().len();
            let verdict = Verdict::Refused(error.clone());
            self.remember(kind, d, verdict, expires, bytes, None);
        }
    }

    /// Verdicts cached and the memory they are estimated to keep alive, for reports and tests.
    pub fn cache_usage(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        (cache.credentials.len() + cache.gids.len(), cache.bytes())
    }

    /// Texts remembered in front of the verdicts and the bytes they hold, for reports and tests.
    pub fn cache_text_usage(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        (cache.texts.len(), cache.texts.bytes)
    }
}

/// `e`, or [`VerifyError::WorkLimit`] when what ran out was the request's work budget
/// ([`crate::work`]): a parse or signature check refused for want of budget fails like a bad one,
/// and must not be reported (or cached) as one.
pub(crate) fn over_budget(e: TrustError) -> TrustError {
    crate::work::limit_error().map_or(e, TrustError::from)
}

/// [`over_budget`] for a [`VerifyError`].
pub(crate) fn over_budget_verify(e: VerifyError) -> VerifyError {
    crate::work::limit_error().unwrap_or(e)
}

/// Signature checks already made during one verification. A credential's caller and object GIDs
/// share their authority links, and parsing shares the certificates themselves, so identity of
/// the shared certificate is enough to skip a repeated RSA operation.
#[derive(Debug, Default)]
struct Checked {
    signed: Vec<(usize, usize)>,
    root_signed: Vec<(usize, Option<usize>)>,
}

impl Checked {
    fn is_signed_by(&mut self, cert: &Certificate, parent: &Certificate) -> bool {
        let key = (cert.identity(), parent.identity());
        if self.signed.contains(&key) {
            return true;
        }
        let ok = cert.is_signed_by(parent.public_key());
        if ok {
            self.signed.push(key);
        }
        ok
    }

    fn signer_of<'r>(&mut self, roots: &'r TrustedRoots, cert: &Certificate) -> Option<&'r Gid> {
        let id = cert.identity();
        if let Some((_, found)) = self.root_signed.iter().find(|(c, _)| *c == id) {
            return found.and_then(|i| roots.gids().get(i));
        }
        let found = roots.signer_index(cert);
        self.root_signed.push((id, found));
        found.and_then(|i| roots.gids().get(i))
    }
}

/// The child may outlive its parent by the clock skew at most: the 2008 code stamps every
/// certificate `now … now + 5 years`, so a credential delegated a second after its parent was made
/// outlives it by a second. The verdict's expiry is still the earliest over the chain.
fn outlives_check(child: &Certificate, parent: &Certificate, skew: i64) -> Result<(), VerifyError> {
    let (c, p) = (child.validity().not_after, parent.validity().not_after);
    if c > p.saturating_add(skew) {
        return Err(VerifyError::OutlivesParent {
            subject: child.subject().to_owned(),
            not_after: format_utc(c),
            parent: parent.subject().to_owned(),
            parent_not_after: format_utc(p),
        });
    }
    Ok(())
}

fn missing_delegate_bit(
    child: &Certificate,
    child_caller: Option<&Gid>,
    parent: &Certificate,
    parent_caller: Option<&Gid>,
) -> VerifyError {
    let holder =
        |g: Option<&Gid>| g.map_or_else(|| "an unnamed caller".to_owned(), |g| g.hrn().to_string());
    VerifyError::MissingDelegateBit {
        subject: child.subject().to_owned(),
        holder: holder(child_caller),
        parent: parent.subject().to_owned(),
        parent_holder: holder(parent_caller),
    }
}

/// A ticket's parent must be an authority's own: caller and object the same principal (hrn and
/// key), and on a credential the `authority` right. With the delegate bit and the object scope
/// checked beside this, a node's, user's or slice's credential can never mint a ticket.
fn authority_ticket_check(child: &Ticket, parent: &Ticket) -> Result<(), VerifyError> {
    let refuse = |reason| VerifyError::NotAuthorityTicket {
        subject: child.subject().to_owned(),
        parent: parent.subject().to_owned(),
        reason,
    };
    let (Some(caller), Some(object)) = (parent.caller(), parent.object()) else {
        return Err(refuse("it lacks a caller or object GID"));
    };
    if caller.hrn() != object.hrn() || caller.public_key() != object.public_key() {
        return Err(refuse("its caller is not its object"));
    }
    match parent.credential_privileges() {
        Some(rights) if !rights.contains(Right::Authority) => {
            Err(refuse("a credential without the authority right"))
        }
        _ => Ok(()),
    }
}

fn object_scope_check(
    subject: &str,
    child: Option<&Gid>,
    parent: Option<&Gid>,
) -> Result<(), VerifyError> {
    let child = child.ok_or_else(|| VerifyError::MissingObjectGid {
        subject: subject.to_owned(),
    })?;
    let parent = parent.ok_or_else(|| VerifyError::MissingObjectGid {
        subject: subject.to_owned(),
    })?;
    if parent.hrn().is_authority_or_self(child.hrn()) {
        Ok(())
    } else {
        Err(VerifyError::ObjectOutsideAuthority {
            subject: subject.to_owned(),
            object: child.hrn().to_string(),
            parent_object: parent.hrn().to_string(),
        })
    }
}

fn target_check(ticket: &Ticket, node: Option<&Hrn>) -> Result<(), VerifyError> {
    match (ticket.target(), node) {
        (Some(target), Some(node)) if target != node => Err(VerifyError::WrongNode {
            subject: ticket.subject().to_owned(),
            target: target.to_string(),
            node: node.to_string(),
        }),
        _ => Ok(()),
    }
}

// === impl VerifiedGid ===

impl VerifiedGid {
    pub fn gid(&self) -> &Gid {
        &self.gid
    }

    pub fn hrn(&self) -> &Hrn {
        self.gid.hrn()
    }

    /// The trusted root the chain reached.
    pub fn root(&self) -> &Hrn {
        &self.root
    }

    /// Earliest notAfter along the chain (seconds since the epoch).
    pub fn expires(&self) -> i64 {
        self.expires
    }
}

// === impl VerifiedCredential ===

impl VerifiedCredential {
    /// The credential's subject (its object's hrn).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    pub fn caller(&self) -> &VerifiedGid {
        &self.0.caller
    }

    pub fn object(&self) -> &VerifiedGid {
        &self.0.object
    }

    /// The trusted root the credential's own chain reached.
    pub fn root(&self) -> &Hrn {
        &self.0.root
    }

    /// The key that signed the credential's own certificate: its parent credential's key (the
    /// holder who issued or delegated it), or a trusted root's. A node recognises the sliver
    /// credentials it issued by this being its own key.
    pub fn issuer_key(&self) -> &PublicKey {
        &self.0.issuer_key
    }

    pub fn privileges(&self) -> &RightList {
        &self.0.privileges
    }

    pub fn delegate(&self) -> bool {
        self.0.delegate
    }

    /// Earliest notAfter of the credential chain and both GID chains.
    pub fn expires(&self) -> i64 {
        self.0.expires
    }

    pub fn can_perform(&self, operation: crate::Operation) -> bool {
        self.0.privileges.can_perform(operation)
    }

    /// The GENI facts (URNs, GENI privilege names) when the credential was a GENI one.
    pub fn geni(&self) -> Option<&GeniVerdict> {
        self.0.geni.as_ref()
    }
}

// === impl VerifiedTicket ===

impl VerifiedTicket {
    pub fn ticket(&self) -> &Ticket {
        &self.0.ticket
    }

    /// The trusted root the ticket's own chain reached.
    pub fn root(&self) -> &Hrn {
        &self.0.root
    }

    pub fn caller(&self) -> &VerifiedGid {
        &self.0.caller
    }

    pub fn object(&self) -> &VerifiedGid {
        &self.0.object
    }

    /// Earliest notAfter of the ticket chain and both GID chains.
    pub fn expires(&self) -> i64 {
        self.0.expires
    }
}

// GENI credentials: their own file, a child module so that it shares this one's machinery.
#[path = "geni/verify.rs"]
mod geni;
pub use geni::GeniVerdict;

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
