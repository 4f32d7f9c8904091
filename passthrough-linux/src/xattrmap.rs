//! Extended attribute name mapping, in the rule language of virtiofsd's `--xattrmap`.
//!
//! A map is a list of rules `<sep>type<sep>scope<sep>key<sep>prepend<sep>`, where `<sep>` is any
//! character chosen by the first one of each rule, `type` is `prefix`, `ok`, `bad` or
//! `unsupported`, and `scope` is `client`, `server` or `all`. Rules are tried in order and the
//! first whose pattern matches decides:
//!
//! - for a name from the guest (get/set/remove), rules with scope `client` or `all` match when
//!   the name starts with `key`: `prefix` sends `prepend` + name to the host, `ok` sends the
//!   name unchanged, `bad` fails with EPERM, `unsupported` with EOPNOTSUPP;
//! - for a name from the host (listxattr), rules with scope `server` or `all` match when the
//!   name starts with `prepend`: `prefix` strips `prepend`, `ok` passes the name, `bad` and
//!   `unsupported` hide it.
//!
//! A name no rule matches is refused (EPERM) from the guest and hidden from the host. Example:
//! `:prefix:all:trusted.:user.virtiofs.::ok:all:::` stores the guest's `trusted.*` as the host's
//! `user.virtiofs.trusted.*` and passes everything else through.

use fuse_abi::Errno;

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RuleType {
    Prefix,
    Ok,
    Bad,
    Unsupported,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    typ: RuleType,
    client: bool,
    server: bool,
    key: Vec<u8>,
    prepend: Vec<u8>,
}

/// A parsed xattr name map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XattrMap {
    rules: Vec<Rule>,
}

/// A rule that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XattrMapError {
    /// Fewer than five separators in a rule.
    #[error("rule {0}: expected <sep>type<sep>scope<sep>key<sep>prepend<sep>")]
    Shape(usize),
    /// Unknown type.
    #[error("rule {0}: unknown type {1:?} (prefix, ok, bad, unsupported)")]
    Type(usize, String),
    /// Unknown scope.
    #[error("rule {0}: unknown scope {1:?} (client, server, all)")]
    Scope(usize, String),
    /// No rules.
    #[error("an xattr map needs at least one rule")]
    Empty,
}

/// Longest host-side name ([`XattrMap::to_host`] output), NUL included.
pub(crate) const HOST_NAME_CAP: usize = 512;

/// A host-side xattr name built without allocating, NUL-terminated.
#[derive(Debug)]
pub(crate) struct HostName {
    buf: [u8; HOST_NAME_CAP],
    len: usize,
}

impl HostName {
    fn from_parts(a: &[u8], b: &[u8]) -> Result<HostName, Errno> {
        let len = a.len() + b.len();
        if len >= HOST_NAME_CAP || a.contains(&0) || b.contains(&0) {
            return Err(Errno::ERANGE);
        }
        let mut buf = [0u8; HOST_NAME_CAP];
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..len].copy_from_slice(b);
        Ok(HostName { buf, len })
    }

    /// The name as a C string.
    pub(crate) fn as_cstr(&self) -> &std::ffi::CStr {
        std::ffi::CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }

    /// The name's bytes, no NUL.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl XattrMap {
    /// Parses a rule list.
    ///
    /// # Errors
    ///
    /// [`XattrMapError`] naming the first bad rule (counted from 0).
    pub fn parse(spec: &str) -> Result<XattrMap, XattrMapError> {
        let mut rules = Vec::new();
        let mut rest = spec.trim();
        while let Some(sep) = rest.chars().next() {
            let idx = rules.len();
            let body = &rest[sep.len_utf8()..];
            let mut parts = body.splitn(5, sep);
            let (Some(typ), Some(scope), Some(key), Some(prepend), Some(tail)) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(XattrMapError::Shape(idx));
            };
            let typ = match typ {
                "prefix" => RuleType::Prefix,
                "ok" => RuleType::Ok,
                "bad" => RuleType::Bad,
                "unsupported" => RuleType::Unsupported,
                other => return Err(XattrMapError::Type(idx, other.to_owned())),
            };
            let (client, server) = match scope {
                "client" => (true, false),
                "server" => (false, true),
                "all" => (true, true),
                other => return Err(XattrMapError::Scope(idx, other.to_owned())),
            };
            rules.push(Rule {
                typ,
                client,
                server,
                key: key.as_bytes().to_vec(),
                prepend: prepend.as_bytes().to_vec(),
            });
            // The closing separator of a rule may be the opening one of the next: accept both
            // `:a:b:c:d::e:f:g:h:` and `:a:b:c:d: :e:f:g:h:`.
            rest = tail.trim_start();
        }
        if rules.is_empty() {
            return Err(XattrMapError::Empty);
        }
        Ok(XattrMap { rules })
    }

    /// Maps a guest name to the host name.
    ///
    /// # Errors
    ///
    /// EPERM (`bad`, or no rule), EOPNOTSUPP (`unsupported`), ERANGE if the result is too long.
    pub(crate) fn to_host(&self, name: &[u8]) -> Result<HostName, Errno> {
        for rule in self.rules.iter().filter(|r| r.client) {
            if name.starts_with(&rule.key) {
                return match rule.typ {
                    RuleType::Prefix => HostName::from_parts(&rule.prepend, name),
                    RuleType::Ok => HostName::from_parts(name, b""),
                    RuleType::Bad => Err(Errno::EPERM),
                    RuleType::Unsupported => Err(Errno::EOPNOTSUPP),
                };
            }
        }
        Err(Errno::EPERM)
    }

    /// Maps a host name to the name the guest sees, or `None` to hide it.
    pub(crate) fn to_guest<'a>(&self, name: &'a [u8]) -> Option<&'a [u8]> {
        for rule in self.rules.iter().filter(|r| r.server) {
            if let Some(stripped) = name.strip_prefix(rule.prepend.as_slice()) {
                return match rule.typ {
                    RuleType::Prefix => Some(stripped),
                    RuleType::Ok => Some(name),
                    RuleType::Bad | RuleType::Unsupported => None,
                };
            }
        }
        None
    }
}

/// Identity mapping (no map configured), with the same length checks.
pub(crate) fn identity(name: &[u8]) -> Result<HostName, Errno> {
    HostName::from_parts(name, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The rule set virtiofsd's documentation uses to keep guest `trusted.*` away from the host.
    const TRUSTED: &str = ":prefix:all:trusted.:user.virtiofs.: :ok:all:::";

    #[test]
    fn to_host_prefix_rule_prepends() {
        let map = XattrMap::parse(TRUSTED).unwrap();
        let host = map.to_host(b"trusted.x").unwrap();
        assert_eq!(host.as_bytes(), b"user.virtiofs.trusted.x");
    }

    #[test]
    fn to_host_ok_rule_passes_name() {
        let map = XattrMap::parse(TRUSTED).unwrap();
        assert_eq!(map.to_host(b"user.a").unwrap().as_bytes(), b"user.a");
    }

    #[test]
    fn to_guest_prefix_rule_strips() {
        let map = XattrMap::parse(TRUSTED).unwrap();
        assert_eq!(
            map.to_guest(b"user.virtiofs.trusted.x"),
            Some(&b"trusted.x"[..])
        );
    }

    #[test]
    fn to_host_bad_rule_is_eperm_and_hidden() {
        let map = XattrMap::parse("/bad/all/security./security./ /ok/all///").unwrap();
        assert_eq!(map.to_host(b"security.selinux").unwrap_err(), Errno::EPERM);
        assert_eq!(map.to_guest(b"security.selinux"), None);
        assert_eq!(map.to_guest(b"user.y"), Some(&b"user.y"[..]));
    }

    #[test]
    fn to_host_unsupported_rule_is_eopnotsupp() {
        let map = XattrMap::parse(":unsupported:client:system.:: :ok:all:::").unwrap();
        assert_eq!(
            map.to_host(b"system.posix_acl_access").unwrap_err(),
            Errno::EOPNOTSUPP
        );
    }

    #[test]
    fn to_host_no_matching_rule_is_eperm() {
        let map = XattrMap::parse(":ok:all:user.:user.:").unwrap();
        assert_eq!(map.to_host(b"trusted.a").unwrap_err(), Errno::EPERM);
        assert_eq!(map.to_guest(b"trusted.a"), None);
    }

    #[test]
    fn parse_rejects_bad_type_scope_and_shape() {
        assert!(matches!(
            XattrMap::parse(":nope:all:::"),
            Err(XattrMapError::Type(0, _))
        ));
        assert!(matches!(
            XattrMap::parse(":ok:both:::"),
            Err(XattrMapError::Scope(0, _))
        ));
        assert_eq!(XattrMap::parse(":ok:all:"), Err(XattrMapError::Shape(0)));
        assert_eq!(XattrMap::parse(""), Err(XattrMapError::Empty));
    }

    #[test]
    fn parse_adjacent_rules_share_no_separator() {
        let map = XattrMap::parse(":ok:client:a:a::bad:all:::").unwrap();
        assert_eq!(map.rules.len(), 2);
    }
}
