//! Sign-in against an LDAP directory or Active Directory (`[[ldap]]`).
//!
//! The password is checked by binding to the directory *as the user* (never anonymously,
//! never with an empty password, only over LDAPS or StartTLS with a verified certificate).
//! Bound as the user, Conclave then reads the user's entry (display name) and the groups
//! naming the entry as a member; the groups decide whether the person may sign in here and
//! whether they moderate. Every value put into a DN or a search filter is escaped (RFC 4514,
//! RFC 4515), and a search that finds more than one entry finds nobody.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use conclave_store::AccountRole;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use serde::{Deserialize, Serialize};

/// LDAP result code for wrong credentials (RFC 4511 section 4.1.9).
const INVALID_CREDENTIALS: u32 = 49;

/// One `[[ldap]]` directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// Short name (lowercase letters, digits, `-`): accounts from this directory have the
    /// source `ldap:NAME` in `conclave user list` and the audit log.
    pub name: String,
    /// `ldaps://host[:port]`, or `ldap://host[:port]` with `starttls = true`. Plain LDAP
    /// would send passwords in the clear and is refused.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (required for `ldap://`).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA certificates that sign the directory's certificate. Default: the
    /// system's CA certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The DN (or, for Active Directory, the user principal name) to bind with; `{username}`
    /// is replaced by the typed user name, DN-escaped. Examples:
    /// `uid={username},ou=people,dc=example,dc=org`, `{username}@corp.example.org`.
    pub bind_dn: String,
    /// Where the user's entry is searched (subtree), once bound as the user.
    pub user_base: String,
    /// Filter that finds the user's entry; `{username}` is replaced, filter-escaped.
    /// Active Directory: `(sAMAccountName={username})`.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Attribute holding the display name (falls back to `cn`, then the user name).
    #[serde(default = "default_name_attribute")]
    pub name_attribute: String,
    /// Where groups are searched (subtree). Default: `user_base`.
    #[serde(default)]
    pub group_base: Option<String>,
    /// Filter that finds the groups of a user; `{dn}` is replaced by the user's DN,
    /// filter-escaped. Active Directory with nested groups:
    /// `(member:1.2.840.113556.1.4.1941:={dn})`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Groups (by `cn` or full DN, case-insensitive) whose members may sign in. Empty: every
    /// directory user who can bind (and a moderator group's members always may).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Groups whose members open rooms and moderate; everyone else allowed is a member.
    #[serde(default)]
    pub moderator_groups: Vec<String>,
    /// Seconds for connecting and for each directory operation (1 to 60).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_user_filter() -> String {
    "(uid={username})".into()
}
fn default_name_attribute() -> String {
    "displayName".into()
}
fn default_group_filter() -> String {
    "(&(objectClass=groupOfNames)(member={dn}))".into()
}
fn default_timeout_secs() -> u64 {
    5
}

/// A name for `[[ldap]]` and `[[oidc]]` entries: 1 to 32 lowercase letters, digits or `-`.
pub fn valid_source_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Check every `[[ldap]]` entry (names unique, TLS required, templates complete).
pub fn validate(all: &[LdapConfig]) -> Result<(), String> {
    for (i, c) in all.iter().enumerate() {
        let at = format!("ldap[{i}] ({:?})", c.name);
        if !valid_source_name(&c.name) {
            return Err(format!(
                "ldap[{i}].name must be 1 to 32 lowercase letters, digits or '-', not {:?}",
                c.name
            ));
        }
        if all[..i].iter().any(|o| o.name == c.name) {
            return Err(format!("{at}: another [[ldap]] has the same name"));
        }
        match (c.url.split_once("://").map(|(s, _)| s), c.starttls) {
            (Some("ldaps"), false) | (Some("ldap"), true) => {}
            (Some("ldaps"), true) => {
                return Err(format!(
                    "{at}: starttls is for ldap:// URLs; ldaps:// is TLS already"
                ));
            }
            (Some("ldap"), false) => {
                return Err(format!(
                    "{at}: ldap:// without starttls = true would send passwords in the clear; \
                     use ldaps:// or set starttls = true"
                ));
            }
            _ => return Err(format!("{at}: url must start with ldaps:// or ldap://")),
        }
        if !c.bind_dn.contains("{username}") {
            return Err(format!("{at}: bind_dn must contain {{username}}"));
        }
        if !(c.user_filter.starts_with('(') && c.user_filter.contains("{username}")) {
            return Err(format!(
                "{at}: user_filter must be a filter in parentheses containing {{username}}"
            ));
        }
        if !(c.group_filter.starts_with('(') && c.group_filter.contains("{dn}")) {
            return Err(format!(
                "{at}: group_filter must be a filter in parentheses containing {{dn}}"
            ));
        }
        if c.user_base.trim().is_empty() || c.name_attribute.trim().is_empty() {
            return Err(format!(
                "{at}: user_base and name_attribute must not be empty"
            ));
        }
        if !(1..=60).contains(&c.timeout_secs) {
            return Err(format!("{at}: timeout_secs must be between 1 and 60"));
        }
    }
    Ok(())
}

/// Why a directory sign-in gives nobody.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// An empty user name or password (LDAP would treat an empty password as an
    /// unauthenticated bind, RFC 4513 section 5.1.2): refused before asking.
    #[error("empty user name or password")]
    Empty,
    /// The directory refused the bind: wrong name or password.
    #[error("the directory refused the user name or password")]
    InvalidCredentials,
    /// Bound, but the user's entry was not found (or the filter found several).
    #[error("bound, but no single entry matches the user filter")]
    NoEntry,
    /// The directory could not be reached or failed.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

impl From<ldap3::LdapError> for DirectoryError {
    fn from(e: ldap3::LdapError) -> Self {
        DirectoryError::Unavailable(e.to_string())
    }
}

/// What the directory says about a user who bound successfully.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    /// The entry's DN.
    pub dn: String,
    /// From `name_attribute`, else `cn`, else the user name.
    pub display_name: String,
    /// The groups naming the entry as a member: each group's DN and its `cn` values.
    pub groups: Vec<String>,
}

/// A configured directory, ready to sign people in.
pub struct Directory {
    /// Its `[[ldap]]` entry.
    pub config: LdapConfig,
    tls: Arc<rustls::ClientConfig>,
}

impl Directory {
    /// Build from a validated entry (reads `ca_file`).
    pub fn new(config: LdapConfig) -> Result<Directory, String> {
        let tls = conclave_token::client_tls(config.ca_file.as_deref())
            .map_err(|e| format!("ldap {:?}: {e}", config.name))?;
        Ok(Directory {
            config,
            tls: Arc::new(tls),
        })
    }

    /// `ldap:NAME`, the source of its accounts.
    pub fn source(&self) -> String {
        format!("ldap:{}", self.config.name)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs)
    }

    /// Open a TLS connection (nobody bound yet).
    pub async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.config.starttls)
            .set_config(self.tls.clone());
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.config.url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// The bind DN of a user name.
    pub fn bind_dn(&self, username: &str) -> String {
        self.config
            .bind_dn
            .replace("{username}", &ldap3::dn_escape(username))
    }

    /// The search filter that finds a user name's entry.
    pub fn user_filter(&self, username: &str) -> String {
        self.config
            .user_filter
            .replace("{username}", &ldap3::ldap_escape(username))
    }

    /// Bind as the user: `Ok` only if the directory accepted this name and password.
    pub async fn bind(
        &self,
        ldap: &mut Ldap,
        username: &str,
        password: &str,
    ) -> Result<(), DirectoryError> {
        if username.is_empty() || password.is_empty() {
            return Err(DirectoryError::Empty);
        }
        let r = ldap
            .with_timeout(self.timeout())
            .simple_bind(&self.bind_dn(username), password)
            .await?;
        match r.rc {
            0 => Ok(()),
            INVALID_CREDENTIALS => Err(DirectoryError::InvalidCredentials),
            rc => Err(DirectoryError::Unavailable(format!(
                "bind failed with result code {rc}: {}",
                r.text
            ))),
        }
    }

    /// Search (subtree, at most two entries: more than one is "nobody").
    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let ldap3::SearchResult(entries, r) = ldap
            .with_timeout(self.timeout())
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(base, Scope::Subtree, filter, attrs)
            .await?;
        match r.rc {
            // 4: sizeLimitExceeded, 32: noSuchObject (the base does not exist).
            0 | 4 | 32 => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
            rc => Err(DirectoryError::Unavailable(format!(
                "search failed with result code {rc}: {}",
                r.text
            ))),
        }
    }

    /// The single entry the user filter finds for `username`, if exactly one.
    pub async fn find_user(
        &self,
        ldap: &mut Ldap,
        username: &str,
    ) -> Result<Option<SearchEntry>, DirectoryError> {
        let attrs = vec![self.config.name_attribute.as_str(), "cn"];
        let mut found = self
            .search(
                ldap,
                &self.config.user_base,
                &self.user_filter(username),
                attrs,
            )
            .await?;
        Ok(if found.len() == 1 { found.pop() } else { None })
    }

    /// Every group of an entry: the DN and the `cn` of each (no size limit here but the
    /// directory's own).
    async fn groups_of(&self, ldap: &mut Ldap, dn: &str) -> Result<Vec<String>, DirectoryError> {
        let base = self
            .config
            .group_base
            .as_deref()
            .unwrap_or(&self.config.user_base);
        let filter = self
            .config
            .group_filter
            .replace("{dn}", &ldap3::ldap_escape(dn));
        let ldap3::SearchResult(entries, r) = ldap
            .with_timeout(self.timeout())
            .search(base, Scope::Subtree, &filter, vec!["cn"])
            .await?;
        if r.rc != 0 && r.rc != 32 {
            return Err(DirectoryError::Unavailable(format!(
                "group search failed with result code {rc}: {text}",
                rc = r.rc,
                text = r.text
            )));
        }
        let mut groups = Vec::new();
        for e in entries.into_iter().map(SearchEntry::construct) {
            groups.extend(e.attrs.get("cn").into_iter().flatten().cloned());
            groups.push(e.dn);
        }
        Ok(groups)
    }

    /// Check a user name and password against the directory and read the user's name and
    /// groups, all bound as the user.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        if username.is_empty() || password.is_empty() {
            return Err(DirectoryError::Empty);
        }
        let mut ldap = self.connect().await?;
        let result = async {
            self.bind(&mut ldap, username, password).await?;
            let entry = self
                .find_user(&mut ldap, username)
                .await?
                .ok_or(DirectoryError::NoEntry)?;
            let first = |attr: &str| {
                entry
                    .attrs
                    .get(attr)
                    .and_then(|v| v.first())
                    .filter(|v| !v.trim().is_empty())
                    .cloned()
            };
            let display_name = first(&self.config.name_attribute)
                .or_else(|| first("cn"))
                .unwrap_or_else(|| username.to_owned());
            let groups = self.groups_of(&mut ldap, &entry.dn).await?;
            Ok(DirectoryUser {
                dn: entry.dn,
                display_name,
                groups,
            })
        }
        .await;
        let _ = ldap.unbind().await;
        result
    }

    /// The role the user's groups give here, or `None`: not allowed to sign in.
    pub fn role(&self, user: &DirectoryUser) -> Option<AccountRole> {
        role_of(
            &user.groups,
            &self.config.allowed_groups,
            &self.config.moderator_groups,
        )
    }
}

/// The role `groups` give (names compared case-insensitively): moderator in one of
/// `moderators`; member in one of `allowed` or when `allowed` is empty; `None` otherwise.
/// The same rule for `[[ldap]]` and `[[oidc]]`.
pub fn role_of(
    groups: &[String],
    allowed: &[String],
    moderators: &[String],
) -> Option<AccountRole> {
    let member_of = |names: &[String]| {
        names
            .iter()
            .any(|n| groups.iter().any(|g| g.eq_ignore_ascii_case(n)))
    };
    if member_of(moderators) {
        Some(AccountRole::Moderator)
    } else if allowed.is_empty() || member_of(allowed) {
        Some(AccountRole::Member)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid entry with the fields in `edit` replaced or added.
    fn entry(edit: &[(&str, &str)]) -> LdapConfig {
        let mut fields = vec![
            ("name", "\"corp\"".to_owned()),
            ("url", "\"ldaps://ldap.example.org\"".to_owned()),
            (
                "bind_dn",
                "\"uid={username},ou=people,dc=example,dc=org\"".to_owned(),
            ),
            ("user_base", "\"ou=people,dc=example,dc=org\"".to_owned()),
            ("group_base", "\"ou=groups,dc=example,dc=org\"".to_owned()),
        ];
        for (k, v) in edit {
            fields.retain(|(f, _)| f != k);
            fields.push((k, (*v).to_owned()));
        }
        let text: String = fields.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refused(all: &[LdapConfig], want: &str) {
        let e = validate(all).expect_err(want);
        assert!(e.contains(want), "{e:?} should say {want:?}");
    }

    #[test]
    fn the_valid_entry_passes_and_each_bent_field_is_named() {
        validate(&[entry(&[])]).unwrap();
        validate(&[entry(&[("url", "\"ldap://dc1\""), ("starttls", "true")])]).unwrap();
        for bad in [
            "\"\"",
            "\"Corp\"",
            "\"corp ad\"",
            "\"corp/x\"",
            &format!("\"{}\"", "a".repeat(33)),
        ] {
            refused(&[entry(&[("name", bad)])], "must be 1 to 32 lowercase");
        }
        refused(
            &[entry(&[]), entry(&[])],
            "another [[ldap]] has the same name",
        );
        refused(
            &[entry(&[("starttls", "true")])],
            "starttls is for ldap:// URLs",
        );
        refused(&[entry(&[("url", "\"ldap://dc1\"")])], "in the clear");
        refused(
            &[entry(&[("url", "\"https://dc1\"")])],
            "url must start with",
        );
        refused(&[entry(&[("url", "\"dc1\"")])], "url must start with");
        refused(
            &[entry(&[("bind_dn", "\"uid=alice,dc=example\"")])],
            "bind_dn must contain {username}",
        );
        refused(
            &[entry(&[("user_filter", "\"uid={username}\"")])],
            "user_filter must be a filter",
        );
        refused(
            &[entry(&[("user_filter", "\"(uid=alice)\"")])],
            "user_filter must be a filter",
        );
        refused(
            &[entry(&[("group_filter", "\"(member=x)\"")])],
            "group_filter must be a filter",
        );
        refused(
            &[entry(&[("user_base", "\"  \"")])],
            "user_base and name_attribute",
        );
        refused(
            &[entry(&[("name_attribute", "\"\"")])],
            "user_base and name_attribute",
        );
        for t in ["0", "61"] {
            refused(
                &[entry(&[("timeout_secs", t)])],
                "timeout_secs must be between",
            );
        }
        // The second entry is the one named.
        refused(
            &[
                entry(&[]),
                entry(&[("name", "\"dc\""), ("timeout_secs", "0")]),
            ],
            "ldap[1] (\"dc\")",
        );
    }
}
