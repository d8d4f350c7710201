//! Rights: the 2008 privilege table, which operations each right allows, the superset relation
//! delegation is checked with, and the default rights of each record type.
//!
//! Parsing is strict where 2008 was sloppy: names are trimmed (`"embed, bind"` works) and an
//! unknown name is an error rather than a right that silently allows nothing or crashes
//! `is_superset`.

use std::fmt;
use std::str::FromStr;

use crate::{RecordType, TrustError};

/// One right of the 2008 table (`util/rights.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Right {
    Authority,
    Bind,
    Control,
    Embed,
    Info,
    Ma,
    Refresh,
    Resolve,
    Sa,
}

/// An ordered list of rights, written comma-joined as 2008 did (`refresh,resolve,info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RightList(Vec<Right>);

/// What a right allows: everything, or a fixed set of lower-case operation names.
enum Ops {
    All,
    Some(&'static [&'static str]),
}

// === impl Right ===

impl Right {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authority => "authority",
            Self::Bind => "bind",
            Self::Control => "control",
            Self::Embed => "embed",
            Self::Info => "info",
            Self::Ma => "ma",
            Self::Refresh => "refresh",
            Self::Resolve => "resolve",
            Self::Sa => "sa",
        }
    }

    fn ops(self) -> Ops {
        match self {
            Self::Authority | Self::Ma | Self::Sa => Ops::All,
            Self::Bind => Ops::Some(&["getticket", "loanresources"]),
            Self::Control => Ops::Some(&[
                "updateslice",
                "stopslice",
                "startslice",
                "deleteslice",
                "resetslice",
            ]),
            Self::Embed => Ops::Some(&["getticket", "createslice", "deleteslice", "updateslice"]),
            Self::Info => Ops::Some(&["listslices", "listcomponentresources", "getsliceresources"]),
            Self::Refresh => Ops::Some(&["remove", "update"]),
            Self::Resolve => Ops::Some(&["resolve", "list", "getcredential"]),
        }
    }

    /// Whether this right allows `operation` (compared case-insensitively, as 2008 did).
    pub fn can_perform(self, operation: &str) -> bool {
        match self.ops() {
            Ops::All => true,
            Ops::Some(ops) => ops.iter().any(|o| o.eq_ignore_ascii_case(operation)),
        }
    }

    /// Whether this right allows everything `child` allows.
    pub fn is_superset(self, child: Self) -> bool {
        match (self.ops(), child.ops()) {
            (Ops::All, _) => true,
            (Ops::Some(_), Ops::All) => false,
            (Ops::Some(mine), Ops::Some(theirs)) => theirs.iter().all(|o| mine.contains(o)),
        }
    }
}

impl FromStr for Right {
    type Err = TrustError;

    /// Accepts the 2008 names case-insensitively, trimmed, and the later SFA `name:0|1` form
    /// (the per-right delegate flag is not part of the 2008 model and is dropped).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        let name = match name.rsplit_once(':') {
            Some((n, "0" | "1")) => n.trim(),
            _ => name,
        };
        let all = [
            Self::Authority,
            Self::Bind,
            Self::Control,
            Self::Embed,
            Self::Info,
            Self::Ma,
            Self::Refresh,
            Self::Resolve,
            Self::Sa,
        ];
        all.into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| TrustError::UnknownRight { name: s.to_owned() })
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RightList ===

impl RightList {
    pub fn new(rights: Vec<Right>) -> Self {
        Self(rights)
    }

    /// The rights 2008's `Registry.determine_rights` gave a credential for a record of `kind`.
    pub fn for_record_type(kind: RecordType) -> Self {
        use Right::*;
        Self(match kind {
            RecordType::User => vec![Refresh, Resolve, Info],
            RecordType::Ma | RecordType::Sa => vec![Authority],
            RecordType::Slice => vec![Embed, Bind, Control, Info],
            RecordType::Node => vec![],
        })
    }

    pub fn rights(&self) -> &[Right] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, right: Right) -> bool {
        self.0.contains(&right)
    }

    /// Whether any right in the list allows `operation`.
    pub fn can_perform(&self, operation: &str) -> bool {
        self.0.iter().any(|r| r.can_perform(operation))
    }

    /// Whether every right of `child` is covered by some right here.
    pub fn is_superset(&self, child: &Self) -> bool {
        child
            .0
            .iter()
            .all(|c| self.0.iter().any(|p| p.is_superset(*c)))
    }
}

impl FromStr for RightList {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        s.split(',')
            .map(Right::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl fmt::Display for RightList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> RightList {
        s.parse().unwrap()
    }

    #[test]
    fn table_matches_2008_test_rights() {
        assert!(Right::Embed.can_perform("getticket"));
        assert!(!Right::Embed.can_perform("resolve"));
        assert!(Right::Sa.is_superset(Right::Embed));
        assert!(Right::Embed.is_superset(Right::Embed));
        assert!(!Right::Control.is_superset(Right::Embed));
        assert!(!Right::Embed.is_superset(Right::Control));
        assert!(list("control,sa").is_superset(&list("embed")));
        assert!(!list("embed,bind,control,info").is_superset(&list("authority")));
        assert!(Right::Authority.can_perform("reboot"));
        assert!(!list("refresh,resolve,info").can_perform("reboot"));
        assert!(list("info").can_perform("ListSlices"));
    }

    #[test]
    fn lists_round_trip_and_trim() {
        assert_eq!(list("").to_string(), "");
        assert_eq!(list("embed,resolve").to_string(), "embed,resolve");
        assert_eq!(list("embed, bind").to_string(), "embed,bind");
        assert_eq!(list("embed:1,info:0").to_string(), "embed,info");
    }

    #[test]
    fn unknown_names_are_errors_not_crashes() {
        for bad in ["operator", "embed,,bind", "embed,", "*", "embed;bind"] {
            assert!(bad.parse::<RightList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_rights_by_type() {
        assert_eq!(
            RightList::for_record_type(RecordType::User).to_string(),
            "refresh,resolve,info"
        );
        assert_eq!(
            RightList::for_record_type(RecordType::Sa).to_string(),
            "authority"
        );
        assert_eq!(
            RightList::for_record_type(RecordType::Slice).to_string(),
            "embed,bind,control,info"
        );
        assert_eq!(RightList::for_record_type(RecordType::Node).to_string(), "");
    }
}
