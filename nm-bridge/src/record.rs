//! The sliver record as NodeManager keeps it, built from a verified ticket, and the rspec with
//! NodeManager's defaults.
//!
//! The rspec comes from the ticket's `rspec`, not its attributes (the 2008 component read the
//! attributes, a bug); every key of [`DEFAULT_ALLOCATION`] gets the ticket's value converted to
//! the default's type, or the default. Keys NodeManager does not know are kept as `tags`.

use std::collections::BTreeMap;
use std::fmt;

use geni_xmlrpc::{Struct, Value};
use serde::{Deserialize, Serialize};

use crate::NmError;

/// A PlanetLab sliver name (`<login base>_<slice>`): also a Unix account name, so 1 to 32
/// characters of `[a-z0-9_]`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SliverName(String);

/// One rspec value, typed as NodeManager's default for that key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RspecValue {
    Int(i64),
    Str(String),
}

/// The resource specification: NodeManager's keys with defaults applied.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rspec {
    values: BTreeMap<String, RspecValue>,
    /// Keys of the ticket's rspec that NodeManager has no default for, as given.
    tags: BTreeMap<String, String>,
}

/// A sliver record (`reference/nodemanager.md` §2, `geniwrapper-2008.md` §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliverRecord {
    pub name: SliverName,
    pub slice_id: Option<i64>,
    pub instantiation: String,
    /// SSH public keys, one per entry (NodeManager joins them with newlines).
    pub keys: Vec<String>,
    /// The initscript body (`''` when none).
    pub initscript: String,
    pub vref: String,
    /// The ticket's timestamp; a record replaces an older one only when strictly newer.
    pub timestamp: f64,
    /// Seconds since the epoch: the ticket's expiry.
    pub expires: i64,
    pub rspec: Rspec,
    /// The hrn that redeemed the ticket.
    pub caller: String,
    /// The full hrn of the slice the sliver belongs to (the ticket's object): who may act on the
    /// sliver is decided by this, never by `name`. Empty for a sliver no ticket made (one
    /// NodeManager's own PLC sync created), which only an authority over the node may see.
    #[serde(default)]
    pub slice: String,
}

/// NodeManager's `DEFAULT_ALLOCATION` as the 2008 component used it (`sm.py`): bandwidths from
/// the fallback bwmin 8 and bwmax 10^9 bit/s, divided by 1000 with Python 2 integer division.
pub const DEFAULT_ALLOCATION: [(&str, Allocation); 16] = [
    ("enabled", Allocation::Int(1)),
    ("cpu_pct", Allocation::Int(0)),
    ("cpu_share", Allocation::Int(1)),
    ("net_min_rate", Allocation::Int(0)),
    ("net_max_rate", Allocation::Int(1_000_000)),
    ("net_share", Allocation::Int(1)),
    ("net_i2_min_rate", Allocation::Int(0)),
    ("net_i2_max_rate", Allocation::Int(1_000_000)),
    ("net_i2_share", Allocation::Int(1)),
    ("net_max_kbyte", Allocation::Int(5_662_310)),
    ("net_thresh_kbyte", Allocation::Int(4_529_848)),
    ("net_i2_max_kbyte", Allocation::Int(17_196_646)),
    ("net_i2_thresh_kbyte", Allocation::Int(13_757_316)),
    ("disk_max", Allocation::Int(5_000_000)),
    ("capabilities", Allocation::Str("")),
    ("ip_addresses", Allocation::Str("0.0.0.0")),
];

/// A default and so the type a value is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    Int(i64),
    Str(&'static str),
}

// === impl SliverName ===

impl SliverName {
    pub fn parse(s: &str) -> Result<Self, NmError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NmError::InvalidRecord(format!(
                "sliver name {s:?} must be 1 to 32 characters of a-z, 0-9 and _, starting with a letter"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SliverName {
    type Error = NmError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SliverName> for String {
    fn from(n: SliverName) -> Self {
        n.0
    }
}

impl fmt::Display for SliverName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Rspec ===

impl Rspec {
    /// NodeManager's defaults overlaid with `given` (a ticket's rspec: PLC sends strings).
    pub fn from_ticket(given: &Struct) -> Result<Self, NmError> {
        let mut values = BTreeMap::new();
        for (key, default) in DEFAULT_ALLOCATION {
            let value = match (given.get(key), default) {
                (None | Some(Value::Nil), Allocation::Int(d)) => RspecValue::Int(d),
                (None | Some(Value::Nil), Allocation::Str(d)) => RspecValue::Str(d.to_owned()),
                (Some(v), Allocation::Int(_)) => RspecValue::Int(as_int(key, v)?),
                (Some(v), Allocation::Str(_)) => RspecValue::Str(as_text(key, v)?),
            };
            values.insert(key.to_owned(), value);
        }
        let mut tags = BTreeMap::new();
        for (key, v) in given.iter() {
            if !values.contains_key(key) {
                tags.insert(key.to_owned(), as_text(key, v)?);
            }
        }
        Ok(Self { values, tags })
    }

    pub fn get(&self, key: &str) -> Option<&RspecValue> {
        self.values.get(key)
    }

    /// An integer value (every default but `capabilities` and `ip_addresses`).
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.values.get(key) {
            Some(RspecValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn values(&self) -> impl Iterator<Item = (&str, &RspecValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// As an XML-RPC struct, for NodeManager and for listings.
    pub fn to_struct(&self) -> Struct {
        let mut s = Struct::new();
        for (k, v) in &self.values {
            match v {
                RspecValue::Int(i) => s.insert(k.clone(), Value::Int(*i)),
                RspecValue::Str(t) => s.insert(k.clone(), Value::String(t.clone())),
            }
        }
        for (k, v) in &self.tags {
            s.insert(k.clone(), Value::String(v.clone()));
        }
        s
    }
}

fn as_int(key: &str, v: &Value) -> Result<i64, NmError> {
    let bad = || NmError::InvalidRecord(format!("rspec {key} must be an integer, got {v:?}"));
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s.trim().parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn as_text(key: &str, v: &Value) -> Result<String, NmError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Double(d) => Ok(d.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_owned()),
        _ => Err(NmError::InvalidRecord(format!(
            "rspec {key} must be a scalar, got a {}",
            v.type_name()
        ))),
    }
}

// === impl SliverRecord ===

impl SliverRecord {
    /// The record a verified ticket describes (2008 `geni_ticket_to_plc_rec`, with the rspec read
    /// from the ticket's rspec). `expires` is the ticket's expiry, `caller` its redeemer's hrn.
    pub fn from_ticket(
        attributes: &Struct,
        rspec: &Struct,
        expires: i64,
        caller: &str,
    ) -> Result<Self, NmError> {
        let text = |key: &str| -> Result<Option<String>, NmError> {
            match attributes.get(key) {
                None | Some(Value::Nil) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(NmError::InvalidRecord(format!(
                    "attribute {key} must be a string, got a {}",
                    v.type_name()
                ))),
            }
        };
        let name = text("name")?
            .ok_or_else(|| NmError::InvalidRecord("the ticket has no name attribute".into()))?;
        let keys = match attributes.get("keys") {
            None | Some(Value::Nil) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|k| match k {
                    Value::String(s) => Ok(s.clone()),
                    Value::Struct(s) => match s.get("key") {
                        Some(Value::String(k)) => Ok(k.clone()),
                        _ => Err(NmError::InvalidRecord(
                            "a key struct has no key string".into(),
                        )),
                    },
                    v => Err(NmError::InvalidRecord(format!(
                        "keys must be strings, got a {}",
                        v.type_name()
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(joined)) => joined
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect(),
            Some(v) => {
                return Err(NmError::InvalidRecord(format!(
                    "keys must be an array, got a {}",
                    v.type_name()
                )));
            }
        };
        let timestamp = match attributes.get("timestamp") {
            Some(Value::Double(d)) => *d,
            #[allow(clippy::cast_precision_loss)]
            Some(Value::Int(i)) => *i as f64,
            None => {
                return Err(NmError::InvalidRecord(
                    "the ticket has no timestamp attribute".into(),
                ));
            }
            Some(v) => {
                return Err(NmError::InvalidRecord(format!(
                    "timestamp must be a number, got a {}",
                    v.type_name()
                )));
            }
        };
        let slice_id = match attributes.get("slice_id") {
            Some(Value::Int(i)) => Some(*i),
            None | Some(Value::Nil) => None,
            Some(v) => {
                return Err(NmError::InvalidRecord(format!(
                    "slice_id must be an int, got a {}",
                    v.type_name()
                )));
            }
        };
        Ok(Self {
            name: SliverName::parse(&name)?,
            slice_id,
            instantiation: text("instantiation")?.unwrap_or_else(|| "delegated".to_owned()),
            keys,
            initscript: text("initscript")?.unwrap_or_default(),
            vref: text("vref")?.unwrap_or_else(|| "default".to_owned()),
            timestamp,
            expires,
            rspec: Rspec::from_ticket(rspec)?,
            caller: caller.to_owned(),
            slice: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket_attrs() -> Struct {
        Struct::new()
            .with("name", "pl_testslice")
            .with(
                "keys",
                Value::Array(vec![
                    Value::from("ssh-rsa AAAA a@b"),
                    Value::from("ssh-rsa BBBB c@d"),
                ]),
            )
            .with("instantiation", "delegated")
            .with("vref", "default")
            .with("timestamp", Value::Double(1_227_612_345.5))
            .with("slice_id", Value::Int(1234))
            .with("initscript", "#!/bin/sh\necho hello\n")
    }

    #[test]
    fn a_2008_ticket_becomes_a_record_with_defaults() {
        let rspec = Struct::new()
            .with("cpu_share", "32")
            .with("disk_max", "10000000")
            .with("net_max_rate", "2000")
            .with("x_custom", "7");
        let r = SliverRecord::from_ticket(
            &ticket_attrs(),
            &rspec,
            2_000_000_000,
            "planetlab.us.pl.alice",
        )
        .unwrap();
        assert_eq!(r.name.as_str(), "pl_testslice");
        assert_eq!(r.keys.len(), 2);
        assert_eq!(r.slice_id, Some(1234));
        assert_eq!(r.rspec.int("cpu_share"), Some(32));
        assert_eq!(r.rspec.int("disk_max"), Some(10_000_000));
        assert_eq!(r.rspec.int("net_max_rate"), Some(2000));
        assert_eq!(r.rspec.int("net_share"), Some(1));
        assert_eq!(
            r.rspec.get("ip_addresses"),
            Some(&RspecValue::Str("0.0.0.0".into()))
        );
        assert_eq!(r.rspec.tags().collect::<Vec<_>>(), [("x_custom", "7")]);
    }

    #[test]
    fn the_rspec_comes_from_the_rspec_not_the_attributes() {
        let attrs = ticket_attrs().with("cpu_share", "99");
        let r = SliverRecord::from_ticket(&attrs, &Struct::new(), 0, "x").unwrap();
        assert_eq!(r.rspec.int("cpu_share"), Some(1));
    }

    #[test]
    fn bad_records_are_refused_clearly() {
        let no_name = Struct::new().with("timestamp", Value::Double(1.0));
        assert!(
            SliverRecord::from_ticket(&no_name, &Struct::new(), 0, "x")
                .unwrap_err()
                .to_string()
                .contains("name")
        );
        let bad_rspec = Struct::new().with("cpu_share", "lots");
        let e = SliverRecord::from_ticket(&ticket_attrs(), &bad_rspec, 0, "x").unwrap_err();
        assert!(e.to_string().contains("cpu_share"), "{e}");
        for bad in ["", "Pl_x", "1abc", "a-b", "a/b", &"x".repeat(33)] {
            assert!(SliverName::parse(bad).is_err(), "{bad}");
        }
    }
}
