//! DNS records from the director (`sync_dns`, `platform/linux_platform.go` `SaveDNSRecords`): the
//! records blob is `{"version": N, "records": [["<ip>", "<fqdn>"], ...], ...}`; on Linux `/etc/hosts`
//! becomes the default template for the VM's hostname followed by one `<ip> <fqdn>` line per record.

use serde::Deserialize;

/// The Go agent's `/etc/hosts` template; `{hostname}` is the agent id.
const ETC_HOSTS_TEMPLATE: &str = "127.0.0.1 {hostname} localhost

# The following lines are desirable for IPv6 capable hosts
::1 {hostname} localhost ip6-localhost ip6-loopback
fe00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
ff02::3 ip6-allhosts
";

/// Why DNS records could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blob is not a records document.
    #[error("unmarshalling DNS records")]
    Parse(#[source] settings::gojson::Error),
    /// A record is not an `[ip, name]` pair of safe text.
    #[error("invalid DNS record {0:?}")]
    Record(String),
    /// Writing the hosts file failed.
    #[error("writing {}", .path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The dummy platform's state could not be written.
    #[error(transparent)]
    State(#[from] crate::dummy::state::Error),
}

/// The records blob (Go's `settings.DNSRecords`); other keys are kept in the raw blob only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DnsRecords {
    /// The version the director gave these records.
    #[serde(rename = "Version")]
    pub version: u64,
    /// `[ip, fqdn]` pairs.
    pub records: Vec<Vec<String>>,
}

impl DnsRecords {
    /// Parses a records blob with Go's rules (`"version"` fills `Version`).
    pub fn parse(bytes: &[u8]) -> Result<DnsRecords, Error> {
        settings::gojson::from_slice(bytes).map_err(Error::Parse)
    }

    /// The `<ip> <fqdn>` lines, refusing records that are not pairs or that would break the file.
    pub fn lines(&self) -> Result<String, Error> {
        let mut lines = String::new();
        for record in &self.records {
            let safe = |text: &str| {
                !text.is_empty() && !text.contains(char::is_whitespace) && !text.contains('#')
            };
            match record.as_slice() {
                [ip, name] if safe(ip) && safe(name) => {
                    lines.push_str(ip);
                    lines.push(' ');
                    lines.push_str(name);
                    lines.push('\n');
                }
                _ => return Err(Error::Record(record.join(" "))),
            }
        }
        Ok(lines)
    }
}

/// `/etc/hosts` for `hostname` with `records` appended.
pub fn render_etc_hosts(hostname: &str, records: &DnsRecords) -> Result<String, Error> {
    Ok(ETC_HOSTS_TEMPLATE.replace("{hostname}", hostname) + &records.lines()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_the_default_hosts_file() {
        let records = DnsRecords::parse(br#"{"version":3,"records":[["10.0.0.5","a.b.bosh"],["10.0.0.6","c.d.bosh"]],"record_keys":[]}"#).unwrap();
        assert_eq!(records.version, 3);
        let hosts = render_etc_hosts("agent-1", &records).unwrap();
        assert!(hosts.starts_with("127.0.0.1 agent-1 localhost\n"));
        assert!(hosts.contains("::1 agent-1 localhost ip6-localhost ip6-loopback\n"));
        assert!(hosts.ends_with("ff02::3 ip6-allhosts\n10.0.0.5 a.b.bosh\n10.0.0.6 c.d.bosh\n"));
    }

    #[test]
    fn records_that_would_break_the_file_are_refused() {
        for bad in [
            r#"[["10.0.0.5"]]"#,
            r#"[["10.0.0.5","a b"]]"#,
            r#"[["10.0.0.5\nx","a"]]"#,
        ] {
            let records =
                DnsRecords::parse(format!(r#"{{"version":1,"records":{bad}}}"#).as_bytes())
                    .unwrap();
            assert!(records.lines().is_err(), "{bad}");
        }
    }
}
