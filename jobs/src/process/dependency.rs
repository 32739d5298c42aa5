//! `depends on` between services, as monit 5.2.5 treats it (`src/monitor.c` refuses a control file
//! whose dependencies form a cycle; `src/control.c` `do_start` starts a service's dependencies
//! before it, `do_stop` stops its dependants before it).
//!
//! Pure functions over `(name, depends_on)` pairs: [`find_cycle`] for validation when jobs are
//! loaded, [`closure`] for the services a start or a stop reaches.

use std::collections::{BTreeSet, HashMap};

/// A cycle among `services` (name, the names it depends on), as the path `a, b, ..., a`; `None`
/// when there is none. Names a service depends on that are not in `services` are ignored. Services
/// are visited in the order given, so the same input always reports the same cycle.
pub(crate) fn find_cycle(services: &[(&str, &[String])]) -> Option<Vec<String>> {
    let edges: HashMap<&str, &[String]> = services.iter().copied().collect();
    let mut finished = BTreeSet::new();
    for (name, _) in services {
        let mut path = Vec::new();
        if let Some(cycle) = visit(name, &edges, &mut path, &mut finished) {
            return Some(cycle);
        }
    }
    None
}

/// `seeds` and everything reachable from them through `next`.
pub(crate) fn closure<'a>(
    seeds: impl IntoIterator<Item = &'a str>,
    next: impl Fn(&str) -> Vec<&'a str>,
) -> BTreeSet<&'a str> {
    let mut reached = BTreeSet::new();
    let mut stack: Vec<&str> = seeds.into_iter().collect();
    while let Some(name) = stack.pop() {
        if reached.insert(name) {
            stack.extend(next(name));
        }
    }
    reached
}

/// Depth-first search from `name`; `path` holds the services being visited.
fn visit<'a>(
    name: &'a str,
    edges: &HashMap<&'a str, &'a [String]>,
    path: &mut Vec<&'a str>,
    finished: &mut BTreeSet<&'a str>,
) -> Option<Vec<String>> {
    if finished.contains(name) {
        return None;
    }
    if let Some(start) = path.iter().position(|n| *n == name) {
        let mut cycle: Vec<String> = path[start..].iter().map(|n| (*n).to_owned()).collect();
        cycle.push(name.to_owned());
        return Some(cycle);
    }
    let depends_on = edges.get(name)?;
    path.push(name);
    for dependency in depends_on.iter() {
        if let Some((key, _)) = edges.get_key_value(dependency.as_str()) {
            if let Some(cycle) = visit(key, edges, path, finished) {
                return Some(cycle);
            }
        }
    }
    path.pop();
    finished.insert(name);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn cycles_are_found_and_reported_as_a_path() {
        let (a, b, c, none) = (names(&["b"]), names(&["c"]), names(&["a"]), names(&[]));
        let ghost = names(&["ghost"]);
        type Services<'a> = Vec<(&'a str, &'a [String])>;
        let cases: Vec<(Services, Option<Vec<String>>)> = vec![
            (vec![("a", &none)], None),
            (vec![("a", &a), ("b", &none)], None),
            (
                vec![("a", &a), ("b", &b), ("c", &c)],
                Some(names(&["a", "b", "c", "a"])),
            ),
            (
                vec![("x", &b), ("b", &b), ("c", &c), ("a", &a)],
                Some(names(&["c", "a", "b", "c"])),
            ),
            // A dependency nobody defines is not a cycle (the loader reports it).
            (vec![("a", &ghost)], None),
        ];
        for (services, expected) in cases {
            assert_eq!(find_cycle(&services), expected, "{services:?}");
        }
        let own = names(&["self"]);
        assert_eq!(
            find_cycle(&[("self", &own)]),
            Some(names(&["self", "self"]))
        );
    }

    #[test]
    fn a_diamond_is_not_a_cycle() {
        let (top, left, right, bottom) = (
            names(&["left", "right"]),
            names(&["bottom"]),
            names(&["bottom"]),
            names(&[]),
        );
        let services: Vec<(&str, &[String])> = vec![
            ("top", &top),
            ("left", &left),
            ("right", &right),
            ("bottom", &bottom),
        ];
        assert_eq!(find_cycle(&services), None);
    }

    #[test]
    fn closure_follows_edges_transitively() {
        let next = |name: &str| match name {
            "a" => vec!["b"],
            "b" => vec!["c", "a"],
            _ => vec![],
        };
        assert_eq!(
            closure(["a"], next).into_iter().collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
        assert_eq!(
            closure(["c"], next).into_iter().collect::<Vec<_>>(),
            vec!["c"]
        );
    }
}
