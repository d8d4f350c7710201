//! PLCAPI's method table as the double serves it: the 4.2 method names, their argument order
//! (the auth struct first, then ids or names, then field structs), argument counts, who may call
//! what, `Get*` filters and return fields, and `system.listMethods` / `system.multicall`.
//!
//! `Get*` filters are read as PLCAPI 4.2's `Table` classes read them: nothing (every row), one id,
//! one name, a list mixing ids and names (joined with OR), or a struct of field → value or list of
//! values (joined with AND; `~` negates, `<`, `>`, `[`, `]` compare, `*` in a string is a
//! wildcard). Unknown ids give no row rather than a fault, as PLCAPI's SQL does; `Update*`,
//! `Delete*` and `Add*To*` on an unknown id fault with `Invalid argument: No such …`.

use geni_xmlrpc::{Fault, MethodCall, MethodResponse, Struct, Value};

use crate::plc::{
    ATTRIBUTE_TYPES, ROLES, Table, argument_count, filterable, invalid, invalid_method,
    invalid_value,
};
use crate::{Plc, Stats};

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Any enabled account with a role.
    Read,
    /// Admins only.
    Write,
}

/// `(name, fewest arguments, most arguments, access)`; counts include the auth struct.
const METHODS: [(&str, usize, usize, Access); 36] = [
    ("AuthCheck", 1, 1, Access::Read),
    ("GetSession", 1, 1, Access::Read),
    ("GetSites", 1, 3, Access::Read),
    ("GetPersons", 1, 3, Access::Read),
    ("GetKeys", 1, 3, Access::Read),
    ("GetSlices", 1, 3, Access::Read),
    ("GetNodes", 1, 3, Access::Read),
    ("GetSliceAttributes", 1, 3, Access::Read),
    ("GetInitScripts", 1, 3, Access::Read),
    ("AddSite", 2, 2, Access::Write),
    ("AddPerson", 2, 2, Access::Write),
    ("AddSlice", 2, 2, Access::Write),
    ("AddNode", 3, 3, Access::Write),
    ("AddPersonKey", 3, 3, Access::Write),
    ("AddPersonToSite", 3, 3, Access::Write),
    ("AddRoleToPerson", 3, 3, Access::Write),
    ("AddPersonToSlice", 3, 3, Access::Write),
    ("AddSliceToNodes", 3, 3, Access::Write),
    ("AddSliceAttribute", 4, 5, Access::Write),
    ("UpdateSliceAttribute", 3, 3, Access::Write),
    ("DeleteSliceAttribute", 2, 2, Access::Write),
    ("AddInitScript", 2, 2, Access::Write),
    ("UpdateSite", 3, 3, Access::Write),
    ("UpdatePerson", 3, 3, Access::Write),
    ("UpdateSlice", 3, 3, Access::Write),
    ("UpdateNode", 3, 3, Access::Write),
    ("DeleteSite", 2, 2, Access::Write),
    ("DeletePerson", 2, 2, Access::Write),
    ("DeleteSlice", 2, 2, Access::Write),
    ("DeleteNode", 2, 2, Access::Write),
    ("DeletePersonFromSite", 3, 3, Access::Write),
    ("DeleteRoleFromPerson", 3, 3, Access::Write),
    ("DeletePersonFromSlice", 3, 3, Access::Write),
    ("DeleteKey", 2, 2, Access::Write),
    ("GetSliceAttributeTypes", 1, 3, Access::Read),
    ("GetRoles", 1, 1, Access::Read),
];

const LIST_METHODS: &str = "system.listMethods";
const MULTICALL: &str = "system.multicall";

/// Every method name `system.listMethods` answers.
pub(crate) fn method_names() -> Vec<String> {
    let mut names: Vec<String> = METHODS.iter().map(|m| m.0.to_owned()).collect();
    names.push(LIST_METHODS.to_owned());
    names.push(MULTICALL.to_owned());
    names.sort();
    names
}

/// Answers one HTTP request's call, `system.multicall` included.
pub(crate) fn respond(plc: &mut Plc, stats: &mut Stats, call: &MethodCall) -> MethodResponse {
    let answer = match call.method.as_str() {
        LIST_METHODS => {
            count(stats, LIST_METHODS);
            Ok(Value::Array(
                method_names().into_iter().map(Value::String).collect(),
            ))
        }
        MULTICALL => {
            stats.multicalls += 1;
            multicall(plc, stats, &call.params)
        }
        method => {
            count(stats, method);
            dispatch(plc, method, &call.params)
        }
    };
    match answer {
        Ok(v) => MethodResponse::Success(v),
        Err(f) => MethodResponse::Fault(f),
    }
}

fn count(stats: &mut Stats, method: &str) {
    *stats.calls.entry(method.to_owned()).or_default() += 1;
}

/// `system.multicall([{methodName, params}, …])`: `[value]` or a fault struct per call, each
/// call authenticated on its own.
fn multicall(plc: &mut Plc, stats: &mut Stats, params: &[Value]) -> Result<Value, Fault> {
    let [Value::Array(calls)] = params else {
        return Err(invalid_value("calls", "expected one array of call structs"));
    };
    let results = calls
        .iter()
        .map(|c| {
            let outcome = match c {
                Value::Struct(s) => match (
                    s.get("methodName").and_then(Value::as_str),
                    s.get("params").and_then(Value::as_array),
                ) {
                    (Some(MULTICALL), _) => Err(invalid("recursive system.multicall forbidden")),
                    (Some(method), Some(params)) => {
                        count(stats, method);
                        dispatch(plc, method, params)
                    }
                    _ => Err(invalid("each call needs methodName and params")),
                },
                other => Err(invalid_value(
                    "call",
                    format!("expected struct, got {}", other.type_name()),
                )),
            };
            match outcome {
                Ok(v) => Value::Array(vec![v]),
                Err(f) => Value::Struct(
                    Struct::new()
                        .with("faultCode", i64::from(f.code))
                        .with("faultString", f.string),
                ),
            }
        })
        .collect();
    Ok(Value::Array(results))
}

/// One PLCAPI method: argument count, authentication, access, then the method itself.
fn dispatch(plc: &mut Plc, method: &str, params: &[Value]) -> Result<Value, Fault> {
    let Some(&(_, min, max, access)) = METHODS.iter().find(|m| m.0 == method) else {
        return Err(invalid_method(method));
    };
    if params.len() < min || params.len() > max {
        return Err(argument_count(params.len(), min, max));
    }
    let caller = plc.authenticate(&params[0])?;
    if access == Access::Write && !caller.admin {
        return Err(crate::plc::auth_failure("Not allowed to call method"));
    }
    let args = &params[1..];
    let one = Value::Int(1);
    match method {
        "AuthCheck" => Ok(one),
        "GetSession" => Ok(Value::String(plc.new_session(caller.person_id))),
        "GetSites" => get(plc, Table::Sites, "site_filter", args),
        "GetPersons" => get(plc, Table::Persons, "person_filter", args),
        "GetKeys" => get(plc, Table::Keys, "key_filter", args),
        "GetSlices" => get(plc, Table::Slices, "slice_filter", args),
        "GetNodes" => get(plc, Table::Nodes, "node_filter", args),
        "GetSliceAttributes" => get(plc, Table::SliceAttributes, "slice_attribute_filter", args),
        "GetInitScripts" => get(plc, Table::InitScripts, "initscript_filter", args),
        "GetSliceAttributeTypes" => Ok(Value::Array(
            ATTRIBUTE_TYPES
                .iter()
                .map(|(id, name, description, role)| {
                    Value::Struct(
                        Struct::new()
                            .with("attribute_type_id", *id)
                            .with("name", *name)
                            .with("description", *description)
                            .with("min_role_id", *role),
                    )
                })
                .collect(),
        )),
        "GetRoles" => Ok(Value::Array(
            ROLES
                .iter()
                .map(|(name, id)| {
                    Value::Struct(Struct::new().with("role_id", *id).with("name", *name))
                })
                .collect(),
        )),
        "AddSite" => plc
            .add_site(fields(args, 0, "site_fields")?)
            .map(Value::Int),
        "AddPerson" => plc
            .add_person(fields(args, 0, "person_fields")?)
            .map(Value::Int),
        "AddSlice" => plc
            .add_slice(caller.person_id, fields(args, 0, "slice_fields")?)
            .map(Value::Int),
        "AddNode" => plc
            .add_node(&args[0], fields(args, 1, "node_fields")?)
            .map(Value::Int),
        "AddInitScript" => plc
            .add_initscript(fields(args, 0, "initscript_fields")?)
            .map(Value::Int),
        "AddPersonKey" => {
            let person = plc.person_ref(&args[0])?;
            plc.add_person_key(person, fields(args, 1, "key_fields")?)
                .map(Value::Int)
        }
        "AddPersonToSite" => {
            let (person, site) = (plc.person_ref(&args[0])?, plc.site_ref(&args[1])?);
            plc.add_person_to_site(person, site).map(|()| one)
        }
        "AddRoleToPerson" => {
            let role = role_name(&args[0])?;
            let person = plc.person_ref(&args[1])?;
            plc.add_role_to_person(&role, person).map(|()| one)
        }
        "AddPersonToSlice" => {
            let (person, slice) = (plc.person_ref(&args[0])?, plc.slice_ref(&args[1])?);
            plc.add_person_to_slice(person, slice).map(|()| one)
        }
        "AddSliceToNodes" => {
            let slice = plc.slice_ref(&args[0])?;
            let Value::Array(nodes) = &args[1] else {
                return Err(invalid_value("node_id_or_hostname_list", "expected array"));
            };
            let nodes = nodes
                .iter()
                .map(|n| plc.node_ref(n))
                .collect::<Result<Vec<_>, _>>()?;
            plc.add_slice_to_nodes(slice, &nodes).map(|()| one)
        }
        "AddSliceAttribute" => {
            let slice = plc.slice_ref(&args[0])?;
            let type_name = attribute_type_name(&args[1])?;
            let value = string(&args[2], "value")?;
            let node = match args.get(3) {
                None | Some(Value::Nil) => None,
                Some(n) => Some(plc.node_ref(n)?),
            };
            plc.add_slice_attribute(slice, &type_name, value, node)
                .map(Value::Int)
        }
        "UpdateSliceAttribute" => {
            let id = int(&args[0], "slice_attribute_id")?;
            let value = string(&args[1], "value")?;
            plc.update_slice_attribute(id, value).map(|()| one)
        }
        "DeleteSliceAttribute" => {
            let id = int(&args[0], "slice_attribute_id")?;
            plc.delete_slice_attribute(id).map(|()| one)
        }
        "UpdateSite" => {
            let id = plc.site_ref(&args[0])?;
            plc.update_site(id, fields(args, 1, "site_fields")?)
                .map(|()| one)
        }
        "UpdatePerson" => {
            let id = plc.person_ref(&args[0])?;
            plc.update_person(id, fields(args, 1, "person_fields")?)
                .map(|()| one)
        }
        "UpdateSlice" => {
            let id = plc.slice_ref(&args[0])?;
            plc.update_slice(id, fields(args, 1, "slice_fields")?)
                .map(|()| one)
        }
        "UpdateNode" => {
            let id = plc.node_ref(&args[0])?;
            plc.update_node(id, fields(args, 1, "node_fields")?)
                .map(|()| one)
        }
        "DeleteSite" => {
            let id = plc.site_ref(&args[0])?;
            plc.delete_site(id).map(|()| one)
        }
        "DeletePerson" => {
            let id = plc.person_ref(&args[0])?;
            plc.delete_person(id).map(|()| one)
        }
        "DeleteSlice" => {
            let id = plc.slice_ref(&args[0])?;
            plc.delete_slice(id).map(|()| one)
        }
        "DeleteNode" => {
            let id = plc.node_ref(&args[0])?;
            plc.delete_node(id).map(|()| one)
        }
        "DeletePersonFromSite" => {
            let (person, site) = (plc.person_ref(&args[0])?, plc.site_ref(&args[1])?);
            plc.delete_person_from_site(person, site).map(|()| one)
        }
        "DeleteRoleFromPerson" => {
            let role = role_name(&args[0])?;
            let person = plc.person_ref(&args[1])?;
            plc.delete_role_from_person(&role, person).map(|()| one)
        }
        "DeletePersonFromSlice" => {
            let (person, slice) = (plc.person_ref(&args[0])?, plc.slice_ref(&args[1])?);
            plc.delete_person_from_slice(person, slice).map(|()| one)
        }
        "DeleteKey" => {
            let id = int(&args[0], "key_id")?;
            plc.delete_key(id).map(|()| one)
        }
        _ => Err(invalid_method(method)),
    }
}

fn fields<'a>(args: &'a [Value], at: usize, name: &str) -> Result<&'a Struct, Fault> {
    match args.get(at) {
        Some(Value::Struct(s)) => Ok(s),
        Some(other) => Err(invalid_value(
            name,
            format!("expected struct, got {}", other.type_name()),
        )),
        None => Err(invalid_value(name, "missing")),
    }
}

fn string<'a>(v: &'a Value, name: &str) -> Result<&'a str, Fault> {
    v.as_str()
        .ok_or_else(|| invalid_value(name, format!("expected string, got {}", v.type_name())))
}

fn int(v: &Value, name: &str) -> Result<i64, Fault> {
    v.as_i64()
        .ok_or_else(|| invalid_value(name, format!("expected int, got {}", v.type_name())))
}

fn role_name(v: &Value) -> Result<String, Fault> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Int(id) => ROLES
            .iter()
            .find(|(_, r)| r == id)
            .map(|(n, _)| (*n).to_owned())
            .ok_or_else(|| invalid("Invalid role")),
        other => Err(invalid_value(
            "role_id_or_name",
            format!("expected int or string, got {}", other.type_name()),
        )),
    }
}

fn attribute_type_name(v: &Value) -> Result<String, Fault> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Int(id) => ATTRIBUTE_TYPES
            .iter()
            .find(|(t, ..)| t == id)
            .map(|(_, n, ..)| (*n).to_owned())
            .ok_or_else(|| invalid("No such slice attribute")),
        other => Err(invalid_value(
            "attribute_type_id_or_name",
            format!("expected int or string, got {}", other.type_name()),
        )),
    }
}

// === Get* ===

/// `Get<Table>(auth[, filter[, return_fields]])`.
fn get(plc: &Plc, table: Table, filter_name: &str, args: &[Value]) -> Result<Value, Fault> {
    let names_allowed = !matches!(table, Table::Keys | Table::SliceAttributes);
    let by_item = |item: &Value| -> Result<Option<i64>, Fault> {
        match item {
            Value::Int(id) => Ok(plc.exists(table, *id).then_some(*id)),
            Value::String(name) if names_allowed => Ok(plc
                .id_of_name(table, name)
                .filter(|id| plc.exists(table, *id))),
            other => Err(invalid_value(
                filter_name,
                format!(
                    "expected {}, got {}",
                    if names_allowed {
                        "int or string"
                    } else {
                        "int"
                    },
                    other.type_name()
                ),
            )),
        }
    };
    let mut ids: Vec<i64> = match args.first() {
        None | Some(Value::Nil) => plc.ids(table),
        Some(Value::Array(items)) => {
            let mut found = Vec::with_capacity(items.len());
            for item in items {
                found.extend(by_item(item)?);
            }
            found
        }
        Some(Value::Struct(filter)) => {
            let predicates = parse_filter(table, filter)?;
            let mut found = Vec::new();
            for id in plc.ids(table) {
                if let Some(row) = plc.render(table, id)
                    && predicates.iter().all(|p| p.matches(&row))
                {
                    found.push(id);
                }
            }
            found
        }
        Some(item @ (Value::Int(_) | Value::String(_))) => by_item(item)?.into_iter().collect(),
        Some(other) => {
            return Err(invalid_value(
                filter_name,
                format!("wrong filter type {}", other.type_name()),
            ));
        }
    };
    // SQL answers each row once, in table order.
    ids.sort_unstable();
    ids.dedup();
    let wanted: Option<Vec<&str>> = match args.get(1) {
        None | Some(Value::Nil) => None,
        Some(Value::Array(names)) => Some(
            names
                .iter()
                .map(|n| string(n, "return_fields"))
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(invalid_value(
                "return_fields",
                format!("expected array, got {}", other.type_name()),
            ));
        }
    };
    let rows = ids
        .into_iter()
        .filter_map(|id| plc.render(table, id))
        .map(|row| match &wanted {
            None => Value::Struct(row),
            Some(names) => Value::Struct(
                row.iter()
                    .filter(|(k, _)| names.contains(k))
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect(),
            ),
        })
        .collect();
    Ok(Value::Array(rows))
}

/// One member of a struct filter.
struct Predicate {
    field: String,
    op: Op,
    negate: bool,
    want: Value,
}

#[derive(Clone, Copy)]
enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

fn parse_filter(table: Table, filter: &Struct) -> Result<Vec<Predicate>, Fault> {
    filter
        .iter()
        .map(|(key, want)| {
            let (negate, rest) = match key.strip_prefix('~') {
                Some(r) => (true, r),
                None => (false, key),
            };
            let (op, field) = match rest.chars().next() {
                Some('<') => (Op::Lt, &rest[1..]),
                Some('>') => (Op::Gt, &rest[1..]),
                Some('[') => (Op::Le, &rest[1..]),
                Some(']') => (Op::Ge, &rest[1..]),
                _ => (Op::Eq, rest),
            };
            if !filterable(table).contains(&field) {
                return Err(invalid(format!("Invalid filter field '{field}'")));
            }
            Ok(Predicate {
                field: field.to_owned(),
                op,
                negate,
                want: want.clone(),
            })
        })
        .collect()
}

impl Predicate {
    fn matches(&self, row: &Struct) -> bool {
        let have = row.get(&self.field).unwrap_or(&Value::Nil);
        let hit = match (&self.op, &self.want) {
            (Op::Eq, Value::Array(options)) => options.iter().any(|w| equal(have, w)),
            (Op::Eq, want) => equal(have, want),
            (op, Value::Int(w)) => have.as_i64().is_some_and(|h| match op {
                Op::Lt => h < *w,
                Op::Gt => h > *w,
                Op::Le => h <= *w,
                Op::Ge => h >= *w,
                Op::Eq => h == *w,
            }),
            _ => false,
        };
        hit != self.negate
    }
}

fn equal(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::String(h), Value::String(w)) if w.contains('*') => glob(w, h),
        (h, w) => h == w,
    }
}

/// `*` matches any run of characters (PLCAPI turns it into SQL `%`).
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("*.edu", "planetlab1.cs.princeton.edu"));
        assert!(glob("planet*princeton*", "planetlab1.cs.princeton.edu"));
        assert!(!glob("*.org", "a.edu"));
        assert!(glob("a*a", "aa"));
        assert!(!glob("aa*aa", "aaa"));
    }
}
