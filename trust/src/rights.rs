//! Rights: the 2008 privilege table, the operations it names ([`Operation`]), which operations
//! each right allows, the superset relation delegation is checked with, and the default rights of
//! each record type.
//!
//! Operations are a closed enum rather than strings so that a misspelt operation is a compile
//! error, not an operation no right allows (which would quietly make it authority-only).
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

/// An operation a server checks a credential's rights against, with its 2008 name
/// (`util/rights.py`, `reference/geniwrapper-2008.md` §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    // Registry (plc).
    Register,
    Remove,
    Update,
    List,
    Resolve,
    GetCredential,
    GetTicket,
    // Slice interface operations the table names but no server of ours checks yet.
    CreateSlice,
    UpdateSlice,
    LoanResources,
    GetSliceResources,
    // Component (node).
    StartSlice,
    StopSlice,
    ResetSlice,
    DeleteSlice,
    ListSlices,
    ListComponentResources,
    /// Allowed by no right's list: only the `*` rights (authority, sa, ma).
    Reboot,
}

/// What a right allows: everything, or a fixed set of operations.
enum Ops {
    All,
    Some(&'static [Operation]),
}

// === impl Operation ===

impl Operation {
    /// The 2008 name (lower case), as logs and faults print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Remove => "remove",
            Self::Update => "update",
            Self::List => "list",
            Self::Resolve => "resolve",
            Self::GetCredential => "getcredential",
            Self::GetTicket => "getticket",
            Self::CreateSlice => "createslice",
            Self::UpdateSlice => "updateslice",
            Self::LoanResources => "loanresources",
            Self::GetSliceResources => "getsliceresources",
            Self::StartSlice => "startslice",
            Self::StopSlice => "stopslice",
            Self::ResetSlice => "resetslice",
            Self::DeleteSlice => "deleteslice",
            Self::ListSlices => "listslices",
            Self::ListComponentResources => "listcomponentresources",
            Self::Reboot => "reboot",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
        use Operation::*;
        match self {
            Self::Authority | Self::Ma | Self::Sa => Ops::All,
            Self::Bind => Ops::Some(&[GetTicket, LoanResources]),
            Self::Control => {
                Ops::Some(&[UpdateSlice, StopSlice, StartSlice, DeleteSlice, ResetSlice])
            }
            Self::Embed => Ops::Some(&[GetTicket, CreateSlice, DeleteSlice, UpdateSlice]),
            Self::Info => Ops::Some(&[ListSlices, ListComponentResources, GetSliceResources]),
            Self::Refresh => Ops::Some(&[Remove, Update]),
            Self::Resolve => Ops::Some(&[Resolve, List, GetCredential]),
        }
    }

    /// Whether this right allows `operation`.
    pub fn can_perform(self, operation: Operation) -> bool {
        match self.ops() {
            Ops::All => true,
            Ops::Some(ops) => ops.contains(&operation),
        }
    }

    /// Whether this is one of the rights that allow everything (authority, sa, ma).
    pub fn is_authority(self) -> bool {
        matches!(self.ops(), Ops::All)
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
    pub fn can_perform(&self, operation: Operation) -> bool {
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
        assert!(Right::Embed.can_perform(Operation::GetTicket));
        assert!(!Right::Embed.can_perform(Operation::Resolve));
        assert!(Right::Sa.is_superset(Right::Embed));
        assert!(Right::Embed.is_superset(Right::Embed));
        assert!(!Right::Control.is_superset(Right::Embed));
        assert!(!Right::Embed.is_superset(Right::Control));
        assert!(list("control,sa").is_superset(&list("embed")));
        assert!(!list("embed,bind,control,info").is_superset(&list("authority")));
        assert!(Right::Authority.can_perform(Operation::Reboot));
        assert!(!list("refresh,resolve,info").can_perform(Operation::Reboot));
        assert!(list("info").can_perform(Operation::ListSlices));
        // Reboot is in no right's list: only the `*` rights allow it.
        for r in [
            Right::Bind,
            Right::Control,
            Right::Embed,
            Right::Info,
            Right::Refresh,
            Right::Resolve,
        ] {
            assert!(
                !r.can_perform(Operation::Reboot) && !r.is_authority(),
                "{r}"
            );
        }
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
