//! Python 2.7's dict iteration order, so that compat-2008 output lists struct members exactly as
//! `xmlrpclib.dumps` of a 2008 dict did.
//!
//! CPython 2.7 (64-bit, hash randomisation off, its default) iterates a dict in slot order of an
//! open-addressed table; the slots follow from each key's string hash, the probe sequence, the
//! table size and the insertion order. This reproduces that for string keys and nothing more.

/// CPython 2.7 `string_hash` on a 64-bit build.
fn py2_hash(key: &str) -> i64 {
    let bytes = key.as_bytes();
    let Some(&first) = bytes.first() else {
        return 0;
    };
    let mut x: i64 = i64::from(first) << 7;
    for &b in bytes {
        x = x.wrapping_mul(1_000_003) ^ i64::from(b);
    }
    // The length is folded in as a C `long`; no key here comes near i64::MAX bytes.
    x ^= i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    if x == -1 { -2 } else { x }
}

/// Where `hash` lands in `table` (all slots `None` or occupied; dicts here never delete).
fn probe(table: &[Option<usize>], hash: i64) -> usize {
    let mask = table.len() - 1;
    // CPython does this arithmetic on size_t; the casts reinterpret the bits on purpose.
    #[allow(clippy::cast_sign_loss)]
    let mut perturb = hash as u64;
    #[allow(clippy::cast_sign_loss)]
    let mut i = hash as u64;
    #[allow(clippy::cast_possible_truncation)]
    let mut slot = (i as usize) & mask;
    while table[slot].is_some() {
        i = (i << 2)
            .wrapping_add(i)
            .wrapping_add(perturb)
            .wrapping_add(1);
        #[allow(clippy::cast_possible_truncation)]
        {
            slot = (i as usize) & mask;
        }
        perturb >>= 5;
    }
    slot
}

/// The order in which Python 2.7 iterates a dict whose keys were inserted in `keys` order
/// (duplicates ignored). Returns indices into `keys`. genicli prints records and tickets in this
/// order, as 2008's `dump()` did.
pub fn iteration_order(keys: &[&str]) -> Vec<usize> {
    let hashes: Vec<i64> = keys.iter().map(|k| py2_hash(k)).collect();
    let mut table: Vec<Option<usize>> = vec![None; 8];
    let mut used = 0usize;
    for (idx, key) in keys.iter().enumerate() {
        if keys[..idx].contains(key) {
            continue;
        }
        let slot = probe(&table, hashes[idx]);
        table[slot] = Some(idx);
        used += 1;
        // dictresize when fill*3 >= (mask+1)*2, to the smallest power of two above 4*used.
        if used * 3 >= table.len() * 2 {
            let mut size = 8;
            while size <= used * 4 {
                size <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; size]);
            for entry in old.into_iter().flatten() {
                let slot = probe(&table, hashes[entry]);
                table[slot] = Some(entry);
            }
        }
    }
    table.into_iter().flatten().collect()
}

/// `keys` reordered as Python 2.7 would iterate them.
pub(crate) fn ordered<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    iteration_order(keys).into_iter().map(|i| keys[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_2008_member_orders() {
        // Orders measured on Python 2.7 (reference/geniwrapper-2008.md §1.2); inputs in the
        // order of the dict literals in gid.py, credential.py and geniticket.py.
        assert_eq!(ordered(&["uuid", "hrn"]), ["hrn", "uuid"]);
        assert_eq!(
            ordered(&[
                "gidCaller",
                "gidObject",
                "lifeTime",
                "privileges",
                "delegate"
            ]),
            [
                "gidObject",
                "privileges",
                "gidCaller",
                "delegate",
                "lifeTime"
            ]
        );
        assert_eq!(
            ordered(&["gidCaller", "gidObject", "attributes", "rspec", "delegate"]),
            ["gidObject", "gidCaller", "delegate", "rspec", "attributes"]
        );
    }
}
