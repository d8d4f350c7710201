//! The in-memory PLC behind the double: PLCAPI 4.2's sites, persons, keys, slices, nodes, slice
//! attributes and initscripts, with the join lists each `Get*` struct carries kept in step on both
//! sides, and PLCAPI's validation and fault texts for what the 2008 wrapper and our backend send.
//!
//! Rows are typed here and rendered into PLCAPI's structs by [`Plc::render`]; a test can replace
//! any member of a rendered row ([`Plc::override_field`]) to make the double answer a shape a real
//! PLCAPI would not. Passwords are kept in clear (the double is for loopback tests) and, as in
//! PLCAPI's `GetPersons`, never returned.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use geni_xmlrpc::{Fault, Struct, Value};

/// PLCAPI's role names and ids (`roles` table).
pub const ROLES: [(&str, i64); 4] = [("admin", 10), ("pi", 20), ("user", 30), ("tech", 40)];

/// Slice attribute types the double knows (`slice_attribute_types`): `(id, name, description,
/// min_role_id)`. `AddSliceAttribute` refuses other names, as PLCAPI does.
pub const ATTRIBUTE_TYPES: [(i64, &str, &str, i64); 12] = [
    (1, "initscript", "Slice initialization script", 30),
    (2, "vref", "Reference image", 30),
    (3, "cpu_share", "Number of CPU shares", 10),
    (4, "cpu_pct", "Reserved CPU percent", 10),
    (5, "net_min_rate", "Minimum bandwidth (kbps)", 10),
    (6, "net_max_rate", "Maximum bandwidth (kbps)", 10),
    (7, "net_share", "Number of bandwidth shares", 10),
    (8, "disk_max", "Disk quota (1k disk blocks)", 10),
    (9, "proper", "Proper operations", 10),
    (
        10,
        "system",
        "Is a default system slice (1) or not (0 or unset)",
        10,
    ),
    (
        11,
        "delegations",
        "Coma-separated list of slices to give delegation authority to",
        10,
    ),
    (
        12,
        "instantiation",
        "Overrides the slice's instantiation",
        10,
    ),
];

/// Slice instantiation states (`slice_instantiations`).
pub const INSTANTIATIONS: [&str; 4] = [
    "not-instantiated",
    "plc-instantiated",
    "delegated",
    "nm-controller",
];

/// The tables a test can reach into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Sites,
    Persons,
    Keys,
    Slices,
    Nodes,
    SliceAttributes,
    InitScripts,
}

/// PLCAPI `sites` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub site_id: i64,
    pub name: String,
    pub abbreviated_name: String,
    pub login_base: String,
    pub is_public: bool,
    pub enabled: bool,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub url: Option<String>,
    pub date_created: i64,
    pub last_updated: i64,
    pub max_slices: i64,
    pub max_slivers: i64,
    pub person_ids: Vec<i64>,
    pub slice_ids: Vec<i64>,
    pub node_ids: Vec<i64>,
}

/// PLCAPI `persons` row. `roles` are names.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub person_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    pub email: String,
    pub phone: Option<String>,
    pub url: Option<String>,
    pub bio: Option<String>,
    pub enabled: bool,
    /// Clear text; never rendered.
    pub password: Option<String>,
    pub date_created: i64,
    pub last_updated: i64,
    pub roles: Vec<String>,
    pub site_ids: Vec<i64>,
    pub key_ids: Vec<i64>,
    pub slice_ids: Vec<i64>,
}

/// PLCAPI `keys` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub key_id: i64,
    pub key_type: String,
    pub key: String,
    pub person_id: i64,
}

/// PLCAPI `slices` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub slice_id: i64,
    pub site_id: i64,
    pub name: String,
    pub instantiation: String,
    pub url: Option<String>,
    pub description: Option<String>,
    pub max_nodes: i64,
    pub creator_person_id: i64,
    pub created: i64,
    pub expires: i64,
    pub node_ids: Vec<i64>,
    pub person_ids: Vec<i64>,
    pub slice_attribute_ids: Vec<i64>,
}

/// PLCAPI `nodes` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub node_id: i64,
    pub hostname: String,
    pub site_id: i64,
    pub boot_state: String,
    pub model: Option<String>,
    pub version: Option<String>,
    pub date_created: i64,
    pub last_updated: i64,
    pub slice_ids: Vec<i64>,
}

/// PLCAPI 4.2 `slice_attribute` row (the type's name, description and role come from its type).
#[derive(Debug, Clone, PartialEq)]
pub struct SliceAttribute {
    pub slice_attribute_id: i64,
    pub slice_id: i64,
    pub node_id: Option<i64>,
    pub attribute_type_id: i64,
    pub value: String,
}

/// PLCAPI `initscripts` row.
#[derive(Debug, Clone, PartialEq)]
pub struct InitScript {
    pub initscript_id: i64,
    pub name: String,
    pub enabled: bool,
    pub script: String,
}

/// Who a call runs as, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) person_id: i64,
    pub(crate) admin: bool,
}

/// The whole database.
#[derive(Debug, Clone, Default)]
pub struct Plc {
    pub(crate) sites: BTreeMap<i64, Site>,
    pub(crate) persons: BTreeMap<i64, Person>,
    pub(crate) keys: BTreeMap<i64, Key>,
    pub(crate) slices: BTreeMap<i64, Slice>,
    pub(crate) nodes: BTreeMap<i64, Node>,
    pub(crate) attributes: BTreeMap<i64, SliceAttribute>,
    pub(crate) initscripts: BTreeMap<i64, InitScript>,
    login_bases: HashMap<String, i64>,
    emails: HashMap<String, i64>,
    slice_names: HashMap<String, i64>,
    hostnames: HashMap<String, i64>,
    sessions: HashMap<String, i64>,
    next_id: BTreeMap<Table, i64>,
    overrides: BTreeMap<(Table, i64), BTreeMap<String, Option<Value>>>,
    /// The time stamps new rows get, and the `expires > now` cut `GetSlices` applies.
    pub(crate) now: i64,
}

// === faults, with PLCAPI's codes and texts (PLC/Faults.py) ===

pub(crate) fn invalid_method(method: &str) -> Fault {
    fault(100, format!("Invalid method {method}"))
}

pub(crate) fn argument_count(got: usize, min: usize, max: usize) -> Fault {
    let expected = if min == max {
        min.to_string()
    } else {
        format!("{min}-{max}")
    };
    fault(101, format!("Expected {expected} arguments, got {got}"))
}

/// `PLCInvalidArgument(extra)`.
pub(crate) fn invalid(extra: impl fmt::Display) -> Fault {
    fault(102, format!("Invalid argument: {extra}"))
}

/// `PLCInvalidArgument(extra, name)`.
pub(crate) fn invalid_value(name: &str, extra: impl fmt::Display) -> Fault {
    fault(102, format!("Invalid {name} value: {extra}"))
}

pub(crate) fn auth_failure(extra: &str) -> Fault {
    fault(103, format!("Failed to authenticate call: {extra}"))
}

fn fault(code: i32, string: String) -> Fault {
    Fault { code, string }
}

// === impl Plc ===

impl Plc {
    /// A PLC holding its own site `pl` and one enabled admin account, as a fresh MyPLC has.
    /// Rows are stamped `now` (Unix seconds).
    pub fn new(admin_email: &str, admin_password: &str, now: i64) -> Self {
        let mut plc = Self {
            now,
            ..Self::default()
        };
        let site = plc
            .add_site(&site_fields("pl", "PlanetLab Central", "PLC"))
            .unwrap_or_default();
        let admin = plc
            .add_person(
                &Struct::new()
                    .with("first_name", "Maintenance")
                    .with("last_name", "Account")
                    .with("email", admin_email)
                    .with("password", admin_password)
                    .with("enabled", true),
            )
            .unwrap_or_default();
        for role in ["admin", "pi", "user", "tech"] {
            let _ = plc.add_role_to_person(role, admin);
        }
        let _ = plc.add_person_to_site(admin, site);
        plc
    }

    fn next(&mut self, table: Table) -> i64 {
        let id = self.next_id.entry(table).or_insert(0);
        *id += 1;
        *id
    }

    pub fn site(&self, id: i64) -> Option<&Site> {
        self.sites.get(&id)
    }

    pub fn person(&self, id: i64) -> Option<&Person> {
        self.persons.get(&id)
    }

    pub fn slice(&self, id: i64) -> Option<&Slice> {
        self.slices.get(&id)
    }

    pub fn node(&self, id: i64) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// `(sites, persons, keys, slices, nodes, slice attributes, initscripts)`.
    pub fn counts(&self) -> [usize; 7] {
        [
            self.sites.len(),
            self.persons.len(),
            self.keys.len(),
            self.slices.len(),
            self.nodes.len(),
            self.attributes.len(),
            self.initscripts.len(),
        ]
    }

    /// Makes row `id` of `table` answer `value` for `field` (or leave the field out for
    /// `None`), whatever the row holds: for tests of a client facing a malformed PLCAPI.
    pub fn override_field(&mut self, table: Table, id: i64, field: &str, value: Option<Value>) {
        self.overrides
            .entry((table, id))
            .or_default()
            .insert(field.to_owned(), value);
    }

    // --- lookups by PLCAPI's "id or name" arguments ---

    pub(crate) fn site_ref(&self, v: &Value) -> Result<i64, Fault> {
        lookup(v, &self.sites, &self.login_bases, "site")
    }

    pub(crate) fn person_ref(&self, v: &Value) -> Result<i64, Fault> {
        match v {
            Value::String(email) => self
                .emails
                .get(&email.to_lowercase())
                .copied()
                .ok_or_else(|| invalid("No such account")),
            _ => lookup(v, &self.persons, &self.emails, "account"),
        }
    }

    pub(crate) fn slice_ref(&self, v: &Value) -> Result<i64, Fault> {
        lookup(v, &self.slices, &self.slice_names, "slice")
    }

    pub(crate) fn node_ref(&self, v: &Value) -> Result<i64, Fault> {
        lookup(v, &self.nodes, &self.hostnames, "node")
    }

    pub(crate) fn id_of_name(&self, table: Table, name: &str) -> Option<i64> {
        match table {
            Table::Sites => self.login_bases.get(name).copied(),
            Table::Persons => self.emails.get(&name.to_lowercase()).copied(),
            Table::Slices => self.slice_names.get(name).copied(),
            Table::Nodes => self.hostnames.get(name).copied(),
            Table::InitScripts => self
                .initscripts
                .values()
                .find(|i| i.name == name)
                .map(|i| i.initscript_id),
            Table::Keys | Table::SliceAttributes => None,
        }
    }

    pub(crate) fn ids(&self, table: Table) -> Vec<i64> {
        match table {
            Table::Sites => self.sites.keys().copied().collect(),
            Table::Persons => self.persons.keys().copied().collect(),
            Table::Keys => self.keys.keys().copied().collect(),
            Table::Slices => self
                .slices
                .values()
                .filter(|s| s.expires > self.now)
                .map(|s| s.slice_id)
                .collect(),
            Table::Nodes => self.nodes.keys().copied().collect(),
            Table::SliceAttributes => self.attributes.keys().copied().collect(),
            Table::InitScripts => self.initscripts.keys().copied().collect(),
        }
    }

    pub(crate) fn exists(&self, table: Table, id: i64) -> bool {
        match table {
            Table::Sites => self.sites.contains_key(&id),
            Table::Persons => self.persons.contains_key(&id),
            Table::Keys => self.keys.contains_key(&id),
            // GetSlices leaves out expired slices unless asked otherwise.
            Table::Slices => self.slices.get(&id).is_some_and(|s| s.expires > self.now),
            Table::Nodes => self.nodes.contains_key(&id),
            Table::SliceAttributes => self.attributes.contains_key(&id),
            Table::InitScripts => self.initscripts.contains_key(&id),
        }
    }

    // --- authentication (PLC/Auth.py) ---

    pub(crate) fn authenticate(&self, auth: &Value) -> Result<Caller, Fault> {
        let Value::Struct(auth) = auth else {
            return Err(invalid_value(
                "auth",
                format!("expected struct, got {}", auth.type_name()),
            ));
        };
        let method = auth.get("AuthMethod").and_then(Value::as_str);
        let person_id = match method {
            Some("password") => {
                let (Some(user), Some(secret)) = (
                    auth.get("Username").and_then(Value::as_str),
                    auth.get("AuthString").and_then(Value::as_str),
                ) else {
                    return Err(invalid_value(
                        "auth",
                        "'Username' and 'AuthString' must be strings",
                    ));
                };
                let person = self
                    .emails
                    .get(&user.to_lowercase())
                    .and_then(|id| self.persons.get(id))
                    .filter(|p| p.enabled)
                    .ok_or_else(|| auth_failure("No such account"))?;
                if person.password.as_deref() != Some(secret) || secret.is_empty() {
                    return Err(auth_failure("Password verification failed"));
                }
                person.person_id
            }
            Some("session") => {
                let key = auth
                    .get("session")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_value("auth", "'session' must be a string"))?;
                self.sessions
                    .get(key)
                    .copied()
                    .filter(|id| self.persons.get(id).is_some_and(|p| p.enabled))
                    .ok_or_else(|| auth_failure("No such session"))?
            }
            Some("anonymous") => {
                return Err(auth_failure("Not allowed to call method"));
            }
            _ => {
                return Err(invalid_value(
                    "auth",
                    "AuthMethod must be one of password, session, anonymous",
                ));
            }
        };
        let roles = self
            .persons
            .get(&person_id)
            .map(|p| p.roles.clone())
            .unwrap_or_default();
        if roles.is_empty() {
            return Err(auth_failure("Not allowed to call method"));
        }
        Ok(Caller {
            person_id,
            admin: roles.iter().any(|r| r == "admin"),
        })
    }

    /// `GetSession`: a fresh session key for `person_id`, deterministic per PLC.
    pub fn new_session(&mut self, person_id: i64) -> String {
        let key = format!("double-session-{person_id}-{}", self.sessions.len() + 1);
        self.sessions.insert(key.clone(), person_id);
        key
    }

    // --- rendering (the Get* structs) ---

    /// Row `id` of `table` as PLCAPI 4.2 returns it, overrides applied.
    pub(crate) fn render(&self, table: Table, id: i64) -> Option<Struct> {
        let mut s = match table {
            Table::Sites => self.sites.get(&id).map(render_site)?,
            Table::Persons => self.persons.get(&id).map(render_person)?,
            Table::Keys => self.keys.get(&id).map(render_key)?,
            Table::Slices => self.slices.get(&id).map(render_slice)?,
            Table::Nodes => self.nodes.get(&id).map(render_node)?,
            Table::SliceAttributes => self.attributes.get(&id).map(render_attribute)?,
            Table::InitScripts => self.initscripts.get(&id).map(render_initscript)?,
        };
        if let Some(over) = self.overrides.get(&(table, id)) {
            for (name, value) in over {
                match value {
                    Some(v) => s.insert(name.as_str(), v.clone()),
                    None => {
                        s.remove(name);
                    }
                }
            }
        }
        Some(s)
    }

    // --- Add* ---

    /// `AddSite(auth, site_fields)`.
    pub fn add_site(&mut self, fields: &Struct) -> Result<i64, Fault> {
        let f = Fields::new(fields, "site_fields");
        let login_base = f.required_str("login_base")?;
        let name = f.required_str("name")?;
        let abbreviated_name = f.required_str("abbreviated_name")?;
        self.check_login_base(&login_base, None)?;
        let id = self.next(Table::Sites);
        let site = Site {
            site_id: id,
            name,
            abbreviated_name,
            login_base: login_base.clone(),
            is_public: f.bool("is_public")?.unwrap_or(true),
            enabled: f.bool("enabled")?.unwrap_or(true),
            latitude: f.double("latitude")?,
            longitude: f.double("longitude")?,
            url: f.opt_str("url")?.flatten(),
            date_created: self.now,
            last_updated: self.now,
            max_slices: f.int("max_slices")?.unwrap_or(0),
            max_slivers: f.int("max_slivers")?.unwrap_or(1000),
            person_ids: Vec::new(),
            slice_ids: Vec::new(),
            node_ids: Vec::new(),
        };
        self.sites.insert(id, site);
        self.login_bases.insert(login_base, id);
        Ok(id)
    }

    /// `AddPerson(auth, person_fields)`: new accounts start disabled unless `enabled` is given,
    /// as PLCAPI's do.
    pub fn add_person(&mut self, fields: &Struct) -> Result<i64, Fault> {
        let f = Fields::new(fields, "person_fields");
        let first_name = f.required_str("first_name")?;
        let last_name = f.required_str("last_name")?;
        let email = f.required_str("email")?.to_lowercase();
        self.check_email(&email, None)?;
        let id = self.next(Table::Persons);
        let person = Person {
            person_id: id,
            first_name,
            last_name,
            title: f.opt_str("title")?.flatten(),
            email: email.clone(),
            phone: f.opt_str("phone")?.flatten(),
            url: f.opt_str("url")?.flatten(),
            bio: f.opt_str("bio")?.flatten(),
            enabled: f.bool("enabled")?.unwrap_or(false),
            password: f.opt_str("password")?.flatten(),
            date_created: self.now,
            last_updated: self.now,
            roles: Vec::new(),
            site_ids: Vec::new(),
            key_ids: Vec::new(),
            slice_ids: Vec::new(),
        };
        self.persons.insert(id, person);
        self.emails.insert(email, id);
        Ok(id)
    }

    /// `AddSlice(auth, slice_fields)`: the site is the one named by the slice's prefix, as in
    /// PLCAPI; expiry defaults to two weeks.
    pub(crate) fn add_slice(&mut self, caller: i64, fields: &Struct) -> Result<i64, Fault> {
        let f = Fields::new(fields, "slice_fields");
        let name = f.required_str("name")?;
        check_slice_name(&name)?;
        if self.slice_names.contains_key(&name) {
            return Err(invalid(format!("Slice name already in use, {name}")));
        }
        let prefix = name.split('_').next().unwrap_or_default();
        let site_id = self
            .login_bases
            .get(prefix)
            .copied()
            .ok_or_else(|| invalid(format!("Invalid slice prefix {prefix} in {name}")))?;
        let instantiation = f
            .str("instantiation")?
            .unwrap_or_else(|| "plc-instantiated".to_owned());
        check_instantiation(&instantiation)?;
        let id = self.next(Table::Slices);
        let slice = Slice {
            slice_id: id,
            site_id,
            name: name.clone(),
            instantiation,
            url: f.opt_str("url")?.flatten(),
            description: f.opt_str("description")?.flatten(),
            max_nodes: f.int("max_nodes")?.unwrap_or(100),
            creator_person_id: caller,
            created: self.now,
            expires: f.int("expires")?.unwrap_or(self.now + 14 * 86_400),
            node_ids: Vec::new(),
            person_ids: Vec::new(),
            slice_attribute_ids: Vec::new(),
        };
        self.slices.insert(id, slice);
        self.slice_names.insert(name, id);
        if let Some(site) = self.sites.get_mut(&site_id) {
            site.slice_ids.push(id);
        }
        Ok(id)
    }

    /// `AddNode(auth, site_id_or_login_base, node_fields)`.
    pub fn add_node(&mut self, site: &Value, fields: &Struct) -> Result<i64, Fault> {
        let site_id = self.site_ref(site)?;
        let f = Fields::new(fields, "node_fields");
        let hostname = f.required_str("hostname")?.to_lowercase();
        check_hostname(&hostname)?;
        if self.hostnames.contains_key(&hostname) {
            return Err(invalid("Hostname already in use"));
        }
        let id = self.next(Table::Nodes);
        let node = Node {
            node_id: id,
            hostname: hostname.clone(),
            site_id,
            boot_state: f.str("boot_state")?.unwrap_or_else(|| "inst".to_owned()),
            model: f.opt_str("model")?.flatten(),
            version: f.opt_str("version")?.flatten(),
            date_created: self.now,
            last_updated: self.now,
            slice_ids: Vec::new(),
        };
        self.nodes.insert(id, node);
        self.hostnames.insert(hostname, id);
        if let Some(site) = self.sites.get_mut(&site_id) {
            site.node_ids.push(id);
        }
        Ok(id)
    }

    /// `AddPersonKey(auth, person_id_or_email, key_fields)`.
    pub fn add_person_key(&mut self, person_id: i64, fields: &Struct) -> Result<i64, Fault> {
        if !self.persons.contains_key(&person_id) {
            return Err(invalid("No such account"));
        }
        let f = Fields::new(fields, "key_fields");
        let key_type = f.required_str("key_type")?;
        if key_type != "ssh" {
            return Err(invalid("Invalid key type"));
        }
        let key = f.required_str("key")?.trim().to_owned();
        check_ssh_key(&key)?;
        let id = self.next(Table::Keys);
        self.keys.insert(
            id,
            Key {
                key_id: id,
                key_type,
                key,
                person_id,
            },
        );
        if let Some(p) = self.persons.get_mut(&person_id) {
            p.key_ids.push(id);
        }
        Ok(id)
    }

    /// `AddPersonToSite(auth, person, site)`.
    pub fn add_person_to_site(&mut self, person_id: i64, site_id: i64) -> Result<(), Fault> {
        if !self.sites.contains_key(&site_id) {
            return Err(invalid("No such site"));
        }
        let person = self
            .persons
            .get_mut(&person_id)
            .ok_or_else(|| invalid("No such account"))?;
        if !person.site_ids.contains(&site_id) {
            person.site_ids.push(site_id);
            if let Some(site) = self.sites.get_mut(&site_id) {
                site.person_ids.push(person_id);
            }
        }
        Ok(())
    }

    /// `AddRoleToPerson(auth, role, person)`.
    pub fn add_role_to_person(&mut self, role: &str, person_id: i64) -> Result<(), Fault> {
        if !ROLES.iter().any(|(r, _)| *r == role) {
            return Err(invalid("Invalid role"));
        }
        let person = self
            .persons
            .get_mut(&person_id)
            .ok_or_else(|| invalid("No such account"))?;
        if !person.roles.iter().any(|r| r == role) {
            person.roles.push(role.to_owned());
        }
        Ok(())
    }

    /// `AddPersonToSlice(auth, person, slice)`.
    pub fn add_person_to_slice(&mut self, person_id: i64, slice_id: i64) -> Result<(), Fault> {
        if !self.slices.contains_key(&slice_id) {
            return Err(invalid("No such slice"));
        }
        let person = self
            .persons
            .get_mut(&person_id)
            .ok_or_else(|| invalid("No such account"))?;
        if !person.slice_ids.contains(&slice_id) {
            person.slice_ids.push(slice_id);
            if let Some(slice) = self.slices.get_mut(&slice_id) {
                slice.person_ids.push(person_id);
            }
        }
        Ok(())
    }

    /// `AddSliceToNodes(auth, slice, [nodes])`.
    pub fn add_slice_to_nodes(&mut self, slice_id: i64, node_ids: &[i64]) -> Result<(), Fault> {
        if !self.slices.contains_key(&slice_id) {
            return Err(invalid("No such slice"));
        }
        for node_id in node_ids {
            let node = self
                .nodes
                .get_mut(node_id)
                .ok_or_else(|| invalid("No such node"))?;
            if !node.slice_ids.contains(&slice_id) {
                node.slice_ids.push(slice_id);
                if let Some(slice) = self.slices.get_mut(&slice_id) {
                    slice.node_ids.push(*node_id);
                }
            }
        }
        Ok(())
    }

    /// `AddSliceAttribute(auth, slice, attribute_type, value[, node])`.
    pub fn add_slice_attribute(
        &mut self,
        slice_id: i64,
        type_name: &str,
        value: &str,
        node_id: Option<i64>,
    ) -> Result<i64, Fault> {
        if !self.slices.contains_key(&slice_id) {
            return Err(invalid("No such slice"));
        }
        let (type_id, ..) = ATTRIBUTE_TYPES
            .iter()
            .find(|(_, n, ..)| *n == type_name)
            .ok_or_else(|| invalid("No such slice attribute"))?;
        if let Some(n) = node_id
            && !self.nodes.contains_key(&n)
        {
            return Err(invalid("No such node"));
        }
        let duplicate = self.slices.get(&slice_id).is_some_and(|s| {
            s.slice_attribute_ids
                .iter()
                .filter_map(|id| self.attributes.get(id))
                .any(|a| a.attribute_type_id == *type_id && a.node_id == node_id)
        });
        if duplicate {
            return Err(invalid("Slice attribute already exists"));
        }
        let id = self.next(Table::SliceAttributes);
        self.attributes.insert(
            id,
            SliceAttribute {
                slice_attribute_id: id,
                slice_id,
                node_id,
                attribute_type_id: *type_id,
                value: value.to_owned(),
            },
        );
        if let Some(slice) = self.slices.get_mut(&slice_id) {
            slice.slice_attribute_ids.push(id);
        }
        Ok(id)
    }

    /// `AddInitScript(auth, initscript_fields)`.
    pub fn add_initscript(&mut self, fields: &Struct) -> Result<i64, Fault> {
        let f = Fields::new(fields, "initscript_fields");
        let name = f.required_str("name")?;
        if self.initscripts.values().any(|i| i.name == name) {
            return Err(invalid("Initscript name already in use"));
        }
        let id = self.next(Table::InitScripts);
        self.initscripts.insert(
            id,
            InitScript {
                initscript_id: id,
                name,
                enabled: f.bool("enabled")?.unwrap_or(true),
                script: f.str("script")?.unwrap_or_default(),
            },
        );
        Ok(id)
    }

    // --- Update* ---

    /// `UpdateSite(auth, site, site_fields)`.
    pub(crate) fn update_site(&mut self, id: i64, fields: &Struct) -> Result<(), Fault> {
        let f = Fields::new(fields, "site_fields");
        if !self.sites.contains_key(&id) {
            return Err(invalid("No such site"));
        }
        let login_base = f.str("login_base")?;
        if let Some(lb) = &login_base {
            self.check_login_base(lb, Some(id))?;
        }
        let (name, abbreviated, url) = (
            f.str("name")?,
            f.str("abbreviated_name")?,
            f.opt_str("url")?,
        );
        let (public, enabled) = (f.bool("is_public")?, f.bool("enabled")?);
        let (max_slices, max_slivers) = (f.int("max_slices")?, f.int("max_slivers")?);
        let (lat, lon) = (f.double("latitude")?, f.double("longitude")?);
        let now = self.now;
        let Some(site) = self.sites.get_mut(&id) else {
            return Err(invalid("No such site"));
        };
        if let Some(lb) = login_base {
            self.login_bases.remove(&site.login_base);
            self.login_bases.insert(lb.clone(), id);
            site.login_base = lb;
        }
        set(&mut site.name, name);
        set(&mut site.abbreviated_name, abbreviated);
        set(&mut site.url, url);
        set(&mut site.is_public, public);
        set(&mut site.enabled, enabled);
        set(&mut site.max_slices, max_slices);
        set(&mut site.max_slivers, max_slivers);
        if lat.is_some() {
            site.latitude = lat;
        }
        if lon.is_some() {
            site.longitude = lon;
        }
        site.last_updated = now;
        Ok(())
    }

    /// `UpdatePerson(auth, person, person_fields)`.
    pub(crate) fn update_person(&mut self, id: i64, fields: &Struct) -> Result<(), Fault> {
        let f = Fields::new(fields, "person_fields");
        if !self.persons.contains_key(&id) {
            return Err(invalid("No such account"));
        }
        let email = f.str("email")?.map(|e| e.to_lowercase());
        if let Some(e) = &email {
            self.check_email(e, Some(id))?;
        }
        let (first, last) = (f.str("first_name")?, f.str("last_name")?);
        let (title, phone, url, bio) = (
            f.opt_str("title")?,
            f.opt_str("phone")?,
            f.opt_str("url")?,
            f.opt_str("bio")?,
        );
        let (enabled, password) = (f.bool("enabled")?, f.opt_str("password")?);
        let now = self.now;
        let Some(p) = self.persons.get_mut(&id) else {
            return Err(invalid("No such account"));
        };
        if let Some(e) = email {
            self.emails.remove(&p.email);
            self.emails.insert(e.clone(), id);
            p.email = e;
        }
        set(&mut p.first_name, first);
        set(&mut p.last_name, last);
        set(&mut p.title, title);
        set(&mut p.phone, phone);
        set(&mut p.url, url);
        set(&mut p.bio, bio);
        set(&mut p.enabled, enabled);
        set(&mut p.password, password);
        p.last_updated = now;
        Ok(())
    }

    /// `UpdateSlice(auth, slice, slice_fields)`.
    pub(crate) fn update_slice(&mut self, id: i64, fields: &Struct) -> Result<(), Fault> {
        let f = Fields::new(fields, "slice_fields");
        if !self.slices.contains_key(&id) {
            return Err(invalid("No such slice"));
        }
        let instantiation = f.str("instantiation")?;
        if let Some(i) = &instantiation {
            check_instantiation(i)?;
        }
        let (url, description) = (f.opt_str("url")?, f.opt_str("description")?);
        let (max_nodes, expires) = (f.int("max_nodes")?, f.int("expires")?);
        let Some(s) = self.slices.get_mut(&id) else {
            return Err(invalid("No such slice"));
        };
        set(&mut s.instantiation, instantiation);
        set(&mut s.url, url);
        set(&mut s.description, description);
        set(&mut s.max_nodes, max_nodes);
        set(&mut s.expires, expires);
        Ok(())
    }

    /// `UpdateNode(auth, node, node_fields)`.
    pub(crate) fn update_node(&mut self, id: i64, fields: &Struct) -> Result<(), Fault> {
        let f = Fields::new(fields, "node_fields");
        if !self.nodes.contains_key(&id) {
            return Err(invalid("No such node"));
        }
        let hostname = f.str("hostname")?.map(|h| h.to_lowercase());
        if let Some(h) = &hostname {
            check_hostname(h)?;
            if self.hostnames.get(h).is_some_and(|other| *other != id) {
                return Err(invalid("Hostname already in use"));
            }
        }
        let (boot_state, model, version) = (
            f.str("boot_state")?,
            f.opt_str("model")?,
            f.opt_str("version")?,
        );
        let now = self.now;
        let Some(n) = self.nodes.get_mut(&id) else {
            return Err(invalid("No such node"));
        };
        if let Some(h) = hostname {
            self.hostnames.remove(&n.hostname);
            self.hostnames.insert(h.clone(), id);
            n.hostname = h;
        }
        set(&mut n.boot_state, boot_state);
        set(&mut n.model, model);
        set(&mut n.version, version);
        n.last_updated = now;
        Ok(())
    }

    /// `UpdateSliceAttribute(auth, slice_attribute_id, value)`.
    pub(crate) fn update_slice_attribute(&mut self, id: i64, value: &str) -> Result<(), Fault> {
        let a = self
            .attributes
            .get_mut(&id)
            .ok_or_else(|| invalid("No such slice attribute"))?;
        value.clone_into(&mut a.value);
        Ok(())
    }

    // --- Delete* ---

    /// `DeleteSite`: the site, its slices and nodes, and the persons at no other site.
    pub(crate) fn delete_site(&mut self, id: i64) -> Result<(), Fault> {
        let site = self
            .sites
            .remove(&id)
            .ok_or_else(|| invalid("No such site"))?;
        self.login_bases.remove(&site.login_base);
        for person_id in &site.person_ids {
            let alone = self
                .persons
                .get(person_id)
                .is_some_and(|p| p.site_ids.iter().all(|s| *s == id));
            if alone {
                self.delete_person(*person_id)?;
            } else if let Some(p) = self.persons.get_mut(person_id) {
                p.site_ids.retain(|s| *s != id);
            }
        }
        for slice_id in &site.slice_ids {
            if self.slices.contains_key(slice_id) {
                self.delete_slice(*slice_id)?;
            }
        }
        for node_id in &site.node_ids {
            if self.nodes.contains_key(node_id) {
                self.delete_node(*node_id)?;
            }
        }
        Ok(())
    }

    /// `DeletePerson`: the account, its keys and its memberships.
    pub(crate) fn delete_person(&mut self, id: i64) -> Result<(), Fault> {
        let person = self
            .persons
            .remove(&id)
            .ok_or_else(|| invalid("No such account"))?;
        self.emails.remove(&person.email);
        for key_id in &person.key_ids {
            self.keys.remove(key_id);
        }
        for site_id in &person.site_ids {
            if let Some(s) = self.sites.get_mut(site_id) {
                s.person_ids.retain(|p| *p != id);
            }
        }
        for slice_id in &person.slice_ids {
            if let Some(s) = self.slices.get_mut(slice_id) {
                s.person_ids.retain(|p| *p != id);
            }
        }
        self.sessions.retain(|_, p| *p != id);
        Ok(())
    }

    /// `DeleteSlice`: the slice, its attributes and memberships.
    pub(crate) fn delete_slice(&mut self, id: i64) -> Result<(), Fault> {
        let slice = self
            .slices
            .remove(&id)
            .ok_or_else(|| invalid("No such slice"))?;
        self.slice_names.remove(&slice.name);
        for attribute_id in &slice.slice_attribute_ids {
            self.attributes.remove(attribute_id);
        }
        if let Some(s) = self.sites.get_mut(&slice.site_id) {
            s.slice_ids.retain(|x| *x != id);
        }
        for person_id in &slice.person_ids {
            if let Some(p) = self.persons.get_mut(person_id) {
                p.slice_ids.retain(|x| *x != id);
            }
        }
        for node_id in &slice.node_ids {
            if let Some(n) = self.nodes.get_mut(node_id) {
                n.slice_ids.retain(|x| *x != id);
            }
        }
        Ok(())
    }

    /// `DeleteNode`: the node, and it from its slices and their node-specific attributes.
    pub(crate) fn delete_node(&mut self, id: i64) -> Result<(), Fault> {
        let node = self
            .nodes
            .remove(&id)
            .ok_or_else(|| invalid("No such node"))?;
        self.hostnames.remove(&node.hostname);
        if let Some(s) = self.sites.get_mut(&node.site_id) {
            s.node_ids.retain(|x| *x != id);
        }
        for slice_id in &node.slice_ids {
            if let Some(s) = self.slices.get_mut(slice_id) {
                s.node_ids.retain(|x| *x != id);
            }
        }
        let gone: Vec<i64> = self
            .attributes
            .values()
            .filter(|a| a.node_id == Some(id))
            .map(|a| a.slice_attribute_id)
            .collect();
        for attribute_id in gone {
            self.delete_slice_attribute(attribute_id)?;
        }
        Ok(())
    }

    /// `DeleteSliceAttribute`.
    pub(crate) fn delete_slice_attribute(&mut self, id: i64) -> Result<(), Fault> {
        let a = self
            .attributes
            .remove(&id)
            .ok_or_else(|| invalid("No such slice attribute"))?;
        if let Some(s) = self.slices.get_mut(&a.slice_id) {
            s.slice_attribute_ids.retain(|x| *x != id);
        }
        Ok(())
    }

    /// `DeletePersonFromSite`.
    pub(crate) fn delete_person_from_site(
        &mut self,
        person_id: i64,
        site_id: i64,
    ) -> Result<(), Fault> {
        let person = self
            .persons
            .get_mut(&person_id)
            .ok_or_else(|| invalid("No such account"))?;
        person.site_ids.retain(|s| *s != site_id);
        if let Some(site) = self.sites.get_mut(&site_id) {
            site.person_ids.retain(|p| *p != person_id);
        }
        Ok(())
    }

    /// `DeleteRoleFromPerson`.
    pub(crate) fn delete_role_from_person(
        &mut self,
        role: &str,
        person_id: i64,
    ) -> Result<(), Fault> {
        if !ROLES.iter().any(|(r, _)| *r == role) {
            return Err(invalid("Invalid role"));
        }
        let person = self
            .persons
            .get_mut(&person_id)
            .ok_or_else(|| invalid("No such account"))?;
        person.roles.retain(|r| r != role);
        Ok(())
    }

    /// `DeletePersonFromSlice`.
    pub(crate) fn delete_person_from_slice(
        &mut self,
        person_id: i64,
        slice_id: i64,
    ) -> Result<(), Fault> {
        let person = self
            .persons
            .get_mut(&person_id)
            .ok_or_else(|| invalid("No such account"))?;
        person.slice_ids.retain(|s| *s != slice_id);
        if let Some(slice) = self.slices.get_mut(&slice_id) {
            slice.person_ids.retain(|p| *p != person_id);
        }
        Ok(())
    }

    /// `DeleteKey`.
    pub(crate) fn delete_key(&mut self, key_id: i64) -> Result<(), Fault> {
        let key = self
            .keys
            .remove(&key_id)
            .ok_or_else(|| invalid("No such key"))?;
        if let Some(person) = self.persons.get_mut(&key.person_id) {
            person.key_ids.retain(|k| *k != key_id);
        }
        Ok(())
    }

    // --- validation shared by Add and Update ---

    fn check_login_base(&self, login_base: &str, own: Option<i64>) -> Result<(), Fault> {
        if login_base.is_empty() {
            return Err(invalid("Login base must be specified"));
        }
        let good = login_base.len() <= 20
            && login_base
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !good {
            return Err(invalid(
                "Login base must consist only of lowercase ASCII letters or numbers",
            ));
        }
        if self
            .login_bases
            .get(login_base)
            .is_some_and(|id| Some(*id) != own)
        {
            return Err(invalid("login_base already in use"));
        }
        Ok(())
    }

    fn check_email(&self, email: &str, own: Option<i64>) -> Result<(), Fault> {
        let (user, domain) = email.split_once('@').unwrap_or_default();
        let bad_chars = email
            .chars()
            .any(|c| "[]()<>|;^,".contains(c) || c.is_whitespace() || !c.is_ascii());
        if user.is_empty() || !domain.contains('.') || bad_chars || email.starts_with('-') {
            return Err(invalid("Invalid e-mail address"));
        }
        if self.emails.get(email).is_some_and(|id| Some(*id) != own) {
            return Err(invalid("E-mail address already in use"));
        }
        Ok(())
    }
}

/// PLCAPI's `lookup` of "id or name" arguments: ints are ids, strings names.
fn lookup<T>(
    v: &Value,
    rows: &BTreeMap<i64, T>,
    names: &HashMap<String, i64>,
    what: &str,
) -> Result<i64, Fault> {
    let found = match v {
        Value::Int(id) => rows.contains_key(id).then_some(*id),
        Value::String(name) => names.get(name).copied(),
        other => {
            return Err(invalid(format!(
                "expected int or string, got {}",
                other.type_name()
            )));
        }
    };
    found.ok_or_else(|| invalid(format!("No such {what}")))
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn check_slice_name(name: &str) -> Result<(), Fault> {
    // ^[a-z0-9]+_[a-z0-9_]+$
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let good = name.split_once('_').is_some_and(|(prefix, rest)| {
        !prefix.is_empty()
            && !rest.is_empty()
            && prefix.bytes().all(ok_char)
            && rest.bytes().all(|b| ok_char(b) || b == b'_')
    }) && name.len() <= 32;
    if good {
        Ok(())
    } else {
        Err(invalid("Invalid slice name"))
    }
}

fn check_instantiation(value: &str) -> Result<(), Fault> {
    if INSTANTIATIONS.contains(&value) {
        Ok(())
    } else {
        Err(invalid("No such instantiation state"))
    }
}

fn check_hostname(hostname: &str) -> Result<(), Fault> {
    let labels_ok = hostname.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if hostname.len() <= 255 && hostname.contains('.') && labels_ok {
        Ok(())
    } else {
        Err(invalid("Invalid hostname"))
    }
}

/// PLCAPI 4.2 `Key.validate_key` for ssh: `^.*(?:ssh-dss|ssh-rsa)[ ]+[A-Za-z0-9+/=]+(?: .*)?$`.
fn check_ssh_key(key: &str) -> Result<(), Fault> {
    let good = ["ssh-rsa ", "ssh-dss "].iter().any(|kind| {
        key.find(kind).is_some_and(|at| {
            let rest = key[at + kind.len()..].trim_start_matches(' ');
            let data = rest.split(' ').next().unwrap_or_default();
            !data.is_empty()
                && data
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
    });
    if good {
        Ok(())
    } else {
        Err(invalid("Invalid SSH version 2 public key"))
    }
}

fn site_fields(login_base: &str, name: &str, abbreviated: &str) -> Struct {
    Struct::new()
        .with("login_base", login_base)
        .with("name", name)
        .with("abbreviated_name", abbreviated)
        .with("max_slices", 100_i64)
}

// === rendering ===

fn ids(list: &[i64]) -> Value {
    Value::Array(list.iter().map(|i| Value::Int(*i)).collect())
}

fn opt_str(v: Option<&String>) -> Value {
    v.map_or(Value::Nil, |s| Value::String(s.clone()))
}

fn opt_f64(v: Option<f64>) -> Value {
    v.map_or(Value::Nil, Value::Double)
}

fn render_site(s: &Site) -> Struct {
    Struct::new()
        .with("site_id", s.site_id)
        .with("name", s.name.as_str())
        .with("abbreviated_name", s.abbreviated_name.as_str())
        .with("login_base", s.login_base.as_str())
        .with("is_public", s.is_public)
        .with("enabled", s.enabled)
        .with("latitude", opt_f64(s.latitude))
        .with("longitude", opt_f64(s.longitude))
        .with("url", opt_str(s.url.as_ref()))
        .with("date_created", s.date_created)
        .with("last_updated", s.last_updated)
        .with("max_slices", s.max_slices)
        .with("max_slivers", s.max_slivers)
        .with("person_ids", ids(&s.person_ids))
        .with("slice_ids", ids(&s.slice_ids))
        .with("address_ids", Value::Array(Vec::new()))
        .with("pcu_ids", Value::Array(Vec::new()))
        .with("node_ids", ids(&s.node_ids))
        .with("peer_id", Value::Nil)
        .with("peer_site_id", Value::Nil)
        .with("ext_consortium_id", Value::Nil)
}

fn render_person(p: &Person) -> Struct {
    let role_ids: Vec<i64> = p
        .roles
        .iter()
        .filter_map(|r| ROLES.iter().find(|(n, _)| n == r).map(|(_, id)| *id))
        .collect();
    Struct::new()
        .with("person_id", p.person_id)
        .with("first_name", p.first_name.as_str())
        .with("last_name", p.last_name.as_str())
        .with("title", opt_str(p.title.as_ref()))
        .with("email", p.email.as_str())
        .with("phone", opt_str(p.phone.as_ref()))
        .with("url", opt_str(p.url.as_ref()))
        .with("bio", opt_str(p.bio.as_ref()))
        .with("enabled", p.enabled)
        .with("last_updated", p.last_updated)
        .with("date_created", p.date_created)
        .with("role_ids", ids(&role_ids))
        .with(
            "roles",
            Value::Array(p.roles.iter().map(|r| Value::from(r.as_str())).collect()),
        )
        .with("site_ids", ids(&p.site_ids))
        .with("key_ids", ids(&p.key_ids))
        .with("slice_ids", ids(&p.slice_ids))
        .with("peer_id", Value::Nil)
        .with("peer_person_id", Value::Nil)
}

fn render_key(k: &Key) -> Struct {
    Struct::new()
        .with("key_id", k.key_id)
        .with("key_type", k.key_type.as_str())
        .with("key", k.key.as_str())
        .with("person_id", k.person_id)
        .with("peer_id", Value::Nil)
        .with("peer_key_id", Value::Nil)
}

fn render_slice(s: &Slice) -> Struct {
    Struct::new()
        .with("slice_id", s.slice_id)
        .with("site_id", s.site_id)
        .with("name", s.name.as_str())
        .with("instantiation", s.instantiation.as_str())
        .with("url", opt_str(s.url.as_ref()))
        .with("description", opt_str(s.description.as_ref()))
        .with("max_nodes", s.max_nodes)
        .with("creator_person_id", s.creator_person_id)
        .with("created", s.created)
        .with("expires", s.expires)
        .with("node_ids", ids(&s.node_ids))
        .with("person_ids", ids(&s.person_ids))
        .with("slice_attribute_ids", ids(&s.slice_attribute_ids))
        .with("peer_id", Value::Nil)
        .with("peer_slice_id", Value::Nil)
}

fn render_node(n: &Node) -> Struct {
    Struct::new()
        .with("node_id", n.node_id)
        .with("hostname", n.hostname.as_str())
        .with("site_id", n.site_id)
        .with("boot_state", n.boot_state.as_str())
        .with("model", opt_str(n.model.as_ref()))
        .with("version", opt_str(n.version.as_ref()))
        .with("date_created", n.date_created)
        .with("last_updated", n.last_updated)
        .with("last_contact", Value::Nil)
        .with("nodenetwork_ids", Value::Array(Vec::new()))
        .with("nodegroup_ids", Value::Array(Vec::new()))
        .with("conf_file_ids", Value::Array(Vec::new()))
        .with("slice_ids", ids(&n.slice_ids))
        .with("pcu_ids", Value::Array(Vec::new()))
        .with("ports", Value::Array(Vec::new()))
        .with("peer_id", Value::Nil)
        .with("peer_node_id", Value::Nil)
}

fn render_attribute(a: &SliceAttribute) -> Struct {
    let (name, description, min_role_id) = ATTRIBUTE_TYPES
        .iter()
        .find(|(id, ..)| *id == a.attribute_type_id)
        .map_or(("", "", 10), |(_, n, d, r)| (*n, *d, *r));
    Struct::new()
        .with("slice_attribute_id", a.slice_attribute_id)
        .with("slice_id", a.slice_id)
        .with("node_id", a.node_id.map_or(Value::Nil, Value::Int))
        .with("attribute_type_id", a.attribute_type_id)
        .with("name", name)
        .with("description", description)
        .with("min_role_id", min_role_id)
        .with("value", a.value.as_str())
}

fn render_initscript(i: &InitScript) -> Struct {
    Struct::new()
        .with("initscript_id", i.initscript_id)
        .with("name", i.name.as_str())
        .with("enabled", i.enabled)
        .with("script", i.script.as_str())
}

/// The members a filter may name per table: the scalar fields (PLCAPI 4.2 cannot filter on the
/// id lists).
pub(crate) fn filterable(table: Table) -> &'static [&'static str] {
    match table {
        Table::Sites => &[
            "site_id",
            "name",
            "abbreviated_name",
            "login_base",
            "is_public",
            "enabled",
            "latitude",
            "longitude",
            "url",
            "date_created",
            "last_updated",
            "max_slices",
            "max_slivers",
            "peer_id",
            "peer_site_id",
            "ext_consortium_id",
        ],
        Table::Persons => &[
            "person_id",
            "first_name",
            "last_name",
            "title",
            "email",
            "phone",
            "url",
            "bio",
            "enabled",
            "last_updated",
            "date_created",
            "peer_id",
            "peer_person_id",
        ],
        Table::Keys => &[
            "key_id",
            "key_type",
            "key",
            "person_id",
            "peer_id",
            "peer_key_id",
        ],
        Table::Slices => &[
            "slice_id",
            "site_id",
            "name",
            "instantiation",
            "url",
            "description",
            "max_nodes",
            "creator_person_id",
            "created",
            "expires",
            "peer_id",
            "peer_slice_id",
        ],
        Table::Nodes => &[
            "node_id",
            "hostname",
            "site_id",
            "boot_state",
            "model",
            "version",
            "date_created",
            "last_updated",
            "last_contact",
            "peer_id",
            "peer_node_id",
        ],
        Table::SliceAttributes => &[
            "slice_attribute_id",
            "slice_id",
            "node_id",
            "attribute_type_id",
            "name",
            "description",
            "min_role_id",
            "value",
        ],
        Table::InitScripts => &["initscript_id", "name", "enabled", "script"],
    }
}

// === field structs of Add*/Update* ===

/// A `*_fields` struct as PLCAPI's `type_check` reads it: unknown members are ignored, known
/// ones must have their type.
struct Fields<'a> {
    s: &'a Struct,
    param: &'static str,
}

impl<'a> Fields<'a> {
    fn new(s: &'a Struct, param: &'static str) -> Self {
        Self { s, param }
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> Fault {
        invalid_value(
            &format!("{}[{key}]", self.param),
            format!("expected {expected}, got {}", got.type_name()),
        )
    }

    fn required_str(&self, key: &str) -> Result<String, Fault> {
        self.str(key)?
            .ok_or_else(|| invalid_value(self.param, format!("'{key}' not specified")))
    }

    fn str(&self, key: &str) -> Result<Option<String>, Fault> {
        match self.s.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "string", v)),
        }
    }

    /// A nullable string: `Some(None)` for nil.
    fn opt_str(&self, key: &str) -> Result<Option<Option<String>>, Fault> {
        match self.s.get(key) {
            None => Ok(None),
            Some(Value::Nil) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(v) => Err(self.wrong(key, "string", v)),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, Fault> {
        match self.s.get(key) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(v) => Err(self.wrong(key, "int", v)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, Fault> {
        match self.s.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "boolean", v)),
        }
    }

    fn double(&self, key: &str) -> Result<Option<f64>, Fault> {
        match self.s.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Double(d)) => Ok(Some(*d)),
            #[allow(clippy::cast_precision_loss)] // latitudes and longitudes are small
            Some(Value::Int(i)) => Ok(Some(*i as f64)),
            Some(v) => Err(self.wrong(key, "double", v)),
        }
    }
}
