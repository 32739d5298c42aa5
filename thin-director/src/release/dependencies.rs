//! Package dependencies: the order packages compile in, the packages a job needs, and BOSH's
//! dependency key for compiled package caching.
//!
//! Follows the director's `package_dependencies_manager.rb`, `compiled_package_requirement_generator.rb`
//! and `key_generator.rb`. A package compiles after everything it depends on; a job runs with its
//! packages and everything they depend on, transitively. A dependency that is not in the release and
//! a cycle (named in full, `a -> b -> a`) are errors. Orders are deterministic: packages are visited
//! by name.

use std::collections::{BTreeMap, BTreeSet};

/// The dependency graph of a release's packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageGraph {
    nodes: BTreeMap<String, Node>,
    order: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    version: String,
    dependencies: Vec<String>,
}

/// Why packages could not be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Two packages have one name.
    #[error("package {name:?} appears twice")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// A package depends on one the release does not have.
    #[error("package {package:?} depends on {dependency:?}, which is not in the release")]
    MissingDependency {
        /// The package.
        package: String,
        /// The dependency it names.
        dependency: String,
    },
    /// Packages depend on each other in a circle.
    #[error("package dependency cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The packages of the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A package asked for is not in the release.
    #[error("package {name:?} is not in the release")]
    Unknown {
        /// The name.
        name: String,
    },
}

impl PackageGraph {
    /// Builds the graph of `(name, version, dependencies)` and orders it.
    pub fn new<'a>(
        packages: impl IntoIterator<Item = (&'a str, &'a str, &'a [String])>,
    ) -> Result<PackageGraph, Error> {
        let mut nodes = BTreeMap::new();
        for (name, version, dependencies) in packages {
            let mut dependencies = dependencies.to_vec();
            dependencies.sort();
            dependencies.dedup();
            let node = Node {
                version: version.to_owned(),
                dependencies,
            };
            if nodes.insert(name.to_owned(), node).is_some() {
                return Err(Error::Duplicate {
                    name: name.to_owned(),
                });
            }
        }
        for (name, node) in &nodes {
            if let Some(missing) = node.dependencies.iter().find(|d| !nodes.contains_key(*d)) {
                return Err(Error::MissingDependency {
                    package: name.clone(),
                    dependency: missing.clone(),
                });
            }
        }
        let order = topological_order(&nodes)?;
        Ok(PackageGraph { nodes, order })
    }

    /// Every package, each after all it depends on.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// Whether the release has a package called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    /// What `name` depends on directly (the packages installed before it compiles), sorted.
    pub fn dependencies(&self, name: &str) -> Option<&[String]> {
        self.nodes
            .get(name)
            .map(|node| node.dependencies.as_slice())
    }

    /// `roots` and everything they depend on, transitively, in compile order.
    pub fn closure<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<String>, Error> {
        let mut wanted = BTreeSet::new();
        let mut stack = Vec::new();
        for root in roots {
            if !self.contains(root) {
                return Err(Error::Unknown {
                    name: root.to_owned(),
                });
            }
            stack.push(root.to_owned());
        }
        // Every name pushed is a root checked above or a dependency, and `new` refused graphs with
        // dependencies outside them, so indexing cannot fail.
        while let Some(name) = stack.pop() {
            if wanted.insert(name.clone()) {
                stack.extend(self.nodes[&name].dependencies.iter().cloned());
            }
        }
        Ok(self
            .order
            .iter()
            .filter(|name| wanted.contains(*name))
            .cloned()
            .collect())
    }

    /// BOSH's dependency key of `name`: its dependencies, sorted by name, as nested JSON arrays
    /// `[name, version, [its dependencies...]]` (the last element only when there are any), e.g.
    /// `[["libyaml","0.2"],["ruby","3.1",[["libyaml","0.2"]]]]`. Together with the package and the
    /// stemcell it keys a compiled package, as `KeyGenerator#dependency_key_from_models` does.
    pub fn dependency_key(&self, name: &str) -> Option<String> {
        let node = self.nodes.get(name)?;
        let key: Vec<serde_json::Value> = node
            .dependencies
            .iter()
            .map(|dependency| self.key_entry(dependency))
            .collect();
        Some(serde_json::Value::Array(key).to_string())
    }

    fn key_entry(&self, name: &str) -> serde_json::Value {
        // The graph is acyclic and closed, so this recursion ends and every name is present.
        let node = &self.nodes[name];
        let mut entry = vec![
            serde_json::Value::from(name),
            serde_json::Value::from(node.version.as_str()),
        ];
        if !node.dependencies.is_empty() {
            entry.push(serde_json::Value::Array(
                node.dependencies
                    .iter()
                    .map(|dependency| self.key_entry(dependency))
                    .collect(),
            ));
        }
        serde_json::Value::Array(entry)
    }
}

/// Depth-first, by name: each package after its dependencies; a back edge is a cycle. Callers
/// checked that every dependency is a node, so indexing cannot fail.
fn topological_order(nodes: &BTreeMap<String, Node>) -> Result<Vec<String>, Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut order = Vec::with_capacity(nodes.len());
    for root in nodes.keys() {
        if marks.contains_key(root.as_str()) {
            continue;
        }
        // The path from `root` to the package being visited, with the index of the next
        // dependency to look at for each.
        let mut path: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
        marks.insert(root, Mark::Visiting);
        while let Some((name, next)) = path.last_mut() {
            let dependencies = &nodes[*name].dependencies;
            if let Some(dependency) = dependencies.get(*next) {
                *next += 1;
                match marks.get(dependency.as_str()) {
                    Some(Mark::Done) => {}
                    Some(Mark::Visiting) => {
                        let start = path.iter().position(|(n, _)| *n == dependency).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|(n, _)| (*n).to_owned()).collect();
                        cycle.push(dependency.clone());
                        return Err(Error::Cycle { cycle });
                    }
                    None => {
                        marks.insert(dependency, Mark::Visiting);
                        path.push((dependency, 0));
                    }
                }
            } else {
                let name = *name;
                marks.insert(name, Mark::Done);
                order.push(name.to_owned());
                path.pop();
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(packages: &[(&str, &[&str])]) -> Result<PackageGraph, Error> {
        let owned: Vec<(String, Vec<String>)> = packages
            .iter()
            .map(|(name, deps)| {
                (
                    (*name).to_owned(),
                    deps.iter().map(|d| (*d).to_owned()).collect(),
                )
            })
            .collect();
        PackageGraph::new(
            owned
                .iter()
                .map(|(name, deps)| (name.as_str(), "1", deps.as_slice())),
        )
    }

    #[test]
    fn dependencies_compile_first() {
        let graph = graph(&[
            ("app", &["ruby", "libpq"]),
            ("ruby", &["libyaml", "openssl"]),
            ("libyaml", &[]),
            ("openssl", &[]),
            ("libpq", &["openssl"]),
            ("tools", &[]),
        ])
        .unwrap();
        assert_eq!(
            graph.order(),
            ["openssl", "libpq", "libyaml", "ruby", "app", "tools"]
        );
        assert_eq!(graph.dependencies("ruby").unwrap(), ["libyaml", "openssl"]);
        assert_eq!(
            graph.closure(["ruby"]).unwrap(),
            ["openssl", "libyaml", "ruby"]
        );
        assert_eq!(
            graph.closure(["tools", "libpq"]).unwrap(),
            ["openssl", "libpq", "tools"]
        );
        assert_eq!(
            graph.closure(["nope"]),
            Err(Error::Unknown {
                name: "nope".into()
            })
        );
    }

    #[test]
    fn a_cycle_is_named_in_full() {
        let err = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "package dependency cycle: a -> b -> c -> a"
        );
        let err = graph(&[("x", &["y"]), ("y", &["y"])]).unwrap_err();
        assert_eq!(err.to_string(), "package dependency cycle: y -> y");
    }

    #[test]
    fn missing_and_duplicate_packages_are_refused() {
        assert_eq!(
            graph(&[("app", &["ruby"])]).unwrap_err().to_string(),
            "package \"app\" depends on \"ruby\", which is not in the release"
        );
        assert_eq!(
            graph(&[("app", &[]), ("app", &[])]),
            Err(Error::Duplicate { name: "app".into() })
        );
    }

    #[test]
    fn dependency_keys_nest_like_the_directors() {
        let packages = [
            ("app", "a1", vec!["ruby".to_owned(), "libyaml".to_owned()]),
            ("ruby", "r1", vec!["libyaml".to_owned()]),
            ("libyaml", "0.2", vec![]),
        ];
        let graph = PackageGraph::new(
            packages
                .iter()
                .map(|(name, version, deps)| (*name, *version, deps.as_slice())),
        )
        .unwrap();
        assert_eq!(
            graph.dependency_key("app").unwrap(),
            r#"[["libyaml","0.2"],["ruby","r1",[["libyaml","0.2"]]]]"#
        );
        assert_eq!(graph.dependency_key("libyaml").unwrap(), "[]");
        assert_eq!(graph.dependency_key("nope"), None);
    }
}
