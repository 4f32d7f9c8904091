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
//!
//! One check goes beyond virtiofsd: a host name is listed under the guest name its rule gives
//! only if that guest name maps back to it ([`XattrMap::to_host`] of it is the host name), so
//! the guest never lists a name that GETXATTR would answer from another attribute, or refuse.
//! virtiofsd's server-side match looks at `prepend` alone: with the example above it lists the
//! host's `user.virtiofs.foo` as `foo` and the host's own `trusted.x` as `trusted.x`, and the
//! guest reading either gets another attribute (`foo`, `user.virtiofs.trusted.x`). Here both
//! are hidden.
//!
//! # The default map
//!
//! With xattrs on and no map given, the backend uses [`XattrMap::default_for_guest`],
//! [`XattrMap::DEFAULT_RULES`]: the guest's `trusted.*` and `security.capability` are stored as the
//! host's `user.virtiofs.trusted.*` and `user.virtiofs.security.capability`, the guest may not
//! name `user.virtiofs.*` itself (EPERM), everything else passes through. The reasoning is in
//! the `ops::xattr` module doc.

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
    /// The built-in map ([`XattrMap::default_for_guest`]), in the `--xattrmap` language.
    ///
    /// The `bad` rule is `client` only: its `prepend` is empty, and a `server` scope would hide
    /// every host name the rules before it leave (virtiofsd's semantics); host names under
    /// `user.virtiofs.` that no rule maps back are hidden by the round-trip check instead.
    pub const DEFAULT_RULES: &str = ":prefix:all:trusted.:user.virtiofs.: \
        :prefix:all:security.capability:user.virtiofs.: \
        :bad:client:user.virtiofs.:: \
        :ok:all:::";

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

    /// The map used when xattrs are on and none is given: [`XattrMap::DEFAULT_RULES`].
    #[must_use]
    pub fn default_for_guest() -> XattrMap {
        match XattrMap::parse(Self::DEFAULT_RULES) {
            Ok(map) => map,
            // DEFAULT_RULES parses (the unit tests say so); an empty map refuses everything.
            Err(_) => XattrMap { rules: Vec::new() },
        }
    }

    /// Whether the guest's `name` reaches the host as that very name.
    #[must_use]
    pub fn passes_through(&self, name: &[u8]) -> bool {
        self.to_host(name).is_ok_and(|host| host.as_bytes() == name)
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

    /// Maps a host name to the name the guest sees, or `None` to hide it: the first `server`
    /// rule whose `prepend` starts the name decides, and the guest name it gives must map
    /// back to `name` (see the module doc).
    pub(crate) fn to_guest<'a>(&self, name: &'a [u8]) -> Option<&'a [u8]> {
        let rule = self
            .rules
            .iter()
            .filter(|r| r.server)
            .find(|r| name.starts_with(&r.prepend))?;
        let guest = match rule.typ {
            RuleType::Prefix => &name[rule.prepend.len()..],
            RuleType::Ok => name,
            RuleType::Bad | RuleType::Unsupported => return None,
        };
        let back = self.to_host(guest).ok()?;
        (back.as_bytes() == name).then_some(guest)
    }
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
    fn default_map_parses_to_four_rules() {
        assert_eq!(XattrMap::default_for_guest().rules.len(), 4);
        assert!(XattrMap::parse(XattrMap::DEFAULT_RULES).is_ok());
    }

    #[test]
    fn default_map_guest_to_host() {
        let map = XattrMap::default_for_guest();
        let host = |n: &[u8]| map.to_host(n).map(|h| h.as_bytes().to_vec());
        assert_eq!(
            host(b"trusted.overlay.opaque").unwrap(),
            b"user.virtiofs.trusted.overlay.opaque"
        );
        assert_eq!(
            host(b"security.capability").unwrap(),
            b"user.virtiofs.security.capability"
        );
        for own in [
            &b"user.a"[..],
            b"security.selinux",
            b"system.posix_acl_access",
        ] {
            assert_eq!(host(own).unwrap(), own);
        }
        for refused in [
            &b"user.virtiofs."[..],
            b"user.virtiofs.x",
            b"user.virtiofs.security.capability",
            b"user.virtiofs.trusted.x",
        ] {
            assert_eq!(host(refused).unwrap_err(), Errno::EPERM, "{refused:?}");
        }
    }

    #[test]
    fn default_map_host_to_guest_round_trips() {
        let map = XattrMap::default_for_guest();
        let guest = |n: &'static [u8]| map.to_guest(n);
        assert_eq!(guest(b"user.virtiofs.trusted.x"), Some(&b"trusted.x"[..]));
        assert_eq!(
            guest(b"user.virtiofs.security.capability"),
            Some(&b"security.capability"[..])
        );
        assert_eq!(guest(b"user.a"), Some(&b"user.a"[..]));
        assert_eq!(guest(b"security.selinux"), Some(&b"security.selinux"[..]));
        // Hidden: the host's own trusted names and capabilities (the guest's name for them
        // would read the remapped attribute), and user.virtiofs.* no rule produced.
        for hidden in [
            &b"trusted.x"[..],
            b"security.capability",
            b"user.virtiofs.foo",
            b"user.virtiofs.security.selinux",
            b"user.virtiofs.user.virtiofs.x",
        ] {
            assert_eq!(map.to_guest(hidden), None, "{hidden:?}");
        }
        // Every name listed maps back to the host name it came from.
        for host in [
            &b"user.virtiofs.trusted.x"[..],
            b"user.virtiofs.security.capability",
            b"user.a",
        ] {
            let g = map.to_guest(host).unwrap();
            assert_eq!(map.to_host(g).unwrap().as_bytes(), host);
        }
    }

    #[test]
    fn to_guest_hides_names_that_do_not_map_back() {
        // virtiofsd would list the host's user.virtiofs.foo as foo, and trusted.x as itself.
        let map = XattrMap::parse(TRUSTED).unwrap();
        assert_eq!(map.to_guest(b"user.virtiofs.foo"), None);
        assert_eq!(map.to_guest(b"trusted.x"), None);
        assert_eq!(map.to_guest(b"user.b"), Some(&b"user.b"[..]));
    }

    #[test]
    fn readme_map_refusing_guest_capabilities() {
        let map = XattrMap::parse(
            ":prefix:all:trusted.:user.virtiofs.: :bad:client:security.capability:: \
             :bad:client:user.virtiofs.:: :ok:all:::",
        )
        .unwrap();
        assert_eq!(
            map.to_host(b"security.capability").unwrap_err(),
            Errno::EPERM
        );
        assert_eq!(
            map.to_host(b"trusted.x").unwrap().as_bytes(),
            b"user.virtiofs.trusted.x"
        );
        assert_eq!(map.to_guest(b"security.capability"), None);
        assert_eq!(map.to_guest(b"user.a"), Some(&b"user.a"[..]));
        assert_eq!(
            map.to_guest(b"user.virtiofs.trusted.x"),
            Some(&b"trusted.x"[..])
        );
    }

    #[test]
    fn parse_adjacent_rules_share_no_separator() {
        let map = XattrMap::parse(":ok:client:a:a::bad:all:::").unwrap();
        assert_eq!(map.rules.len(), 2);
    }
}
