//! [`RedisTarget`]: which Redis deployment holds the shared counters, parsed once from the
//! configured URL.
//!
//! - `redis://[user:pass@]host:port[/db]` — one server (standalone, or a proxy in front of one).
//! - `redis+sentinel://[user:pass@]host:port[,host:port…]/master-name[/db]` — the addresses are
//!   Sentinels; the master named `master-name` is asked for on every (re)connect, so a failover
//!   is followed. `user:pass` are the master's credentials (Sentinels are reached without
//!   authentication).
//! - `redis+cluster://[user:pass@]host:port[,host:port…]` — seed nodes of a Redis Cluster; the
//!   client learns the slot map from them and follows `MOVED`/`ASK`. `user:pass` apply to every
//!   node. No database number: Redis Cluster has only database 0.
//!
//! Credentials are percent-decoded. Error messages never repeat the URL (it may carry a
//! password).

use std::fmt;

/// A Redis deployment and how to reach it. Debug and Display never print the credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: the URL as the `redis` client takes it.
    Standalone {
        /// `redis://…`
        url: String,
    },
    /// A master found through Sentinels.
    Sentinel {
        /// Sentinel addresses.
        sentinels: Vec<Addr>,
        /// The monitored master's name.
        master: String,
        /// Credentials for the master.
        auth: Auth,
        /// Database number on the master.
        db: i64,
    },
    /// A Redis Cluster.
    Cluster {
        /// Seed nodes.
        nodes: Vec<Addr>,
        /// Credentials for every node.
        auth: Auth,
    },
}

/// Optional ACL user and password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for RedisTarget {
    /// The kind and addresses, never credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standalone { .. } => f.write_str("redis standalone"),
            Self::Sentinel { sentinels, master, .. } => {
                write!(f, "redis sentinel (master {master:?}, {} sentinels)", sentinels.len())
            }
            Self::Cluster { nodes, .. } => write!(f, "redis cluster ({} seed nodes)", nodes.len()),
        }
    }
}

/// Why a Redis URL was refused. The message never contains the URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(&'static str);

impl RedisTarget {
    /// Parses a Redis URL (see the module docs for the three forms).
    ///
    /// # Errors
    /// An unknown scheme, a missing or malformed address, master name or database number.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let (scheme, rest) = url.split_once("://").ok_or(TargetError("not a URL: expected scheme://…"))?;
        match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" => {
                // The client validates the rest when the store is built.
                redis::parse_redis_url(url).ok_or(TargetError("not a valid redis:// URL"))?;
                if scheme == "rediss" {
                    return Err(TargetError("TLS (rediss://) is not supported by this build; use redis://"));
                }
                Ok(Self::Standalone { url: url.to_owned() })
            }
            "redis+sentinel" => {
                let (auth, hosts, path) = split(rest)?;
                let mut parts = path.split('/').filter(|s| !s.is_empty());
                let master = parts
                    .next()
                    .ok_or(TargetError("redis+sentinel:// needs the master name as the path: …/mymaster"))?;
                if !master.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
                    return Err(TargetError("the Sentinel master name must be A-Z a-z 0-9 - _ ."));
                }
                let db = match parts.next() {
                    None => 0,
                    Some(d) => d.parse::<i64>().ok().filter(|d| *d >= 0).ok_or(TargetError("bad database number"))?,
                };
                if parts.next().is_some() {
                    return Err(TargetError("redis+sentinel:// path is /master-name[/db]"));
                }
                Ok(Self::Sentinel { sentinels: hosts, master: master.to_owned(), auth, db })
            }
            "redis+cluster" => {
                let (auth, nodes, path) = split(rest)?;
                if !path.trim_matches('/').is_empty() && path.trim_matches('/') != "0" {
                    return Err(TargetError("Redis Cluster has only database 0: remove the path"));
                }
                Ok(Self::Cluster { nodes, auth })
            }
            _ => Err(TargetError("unknown scheme: use redis://, redis+sentinel:// or redis+cluster://")),
        }
    }
}

/// Host and port.
type Addr = (String, u16);

/// `[user:pass@]h:p[,h:p…][/path]` → credentials, addresses, path.
fn split(rest: &str) -> Result<(Auth, Vec<Addr>, &str), TargetError> {
    let rest = rest.split_once(['?', '#']).map_or(rest, |(r, _)| r);
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let auth = match userinfo {
        None => Auth::default(),
        Some(u) => {
            let (user, pass) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
            let user = decode(user)?;
            Auth {
                username: (!user.is_empty()).then_some(user),
                password: pass.map(decode).transpose()?.filter(|p| !p.is_empty()),
            }
        }
    };
    let mut addrs = Vec::new();
    for h in hosts.split(',') {
        addrs.push(host_port(h)?);
    }
    if addrs.len() > 64 {
        return Err(TargetError("at most 64 addresses"));
    }
    Ok((auth, addrs, path))
}

fn host_port(h: &str) -> Result<Addr, TargetError> {
    const MSG: &str = "each address must be host:port (IPv6: [addr]:port)";
    let (host, port) = if let Some(v6) = h.strip_prefix('[') {
        let (addr, port) = v6.split_once("]:").ok_or(TargetError(MSG))?;
        (addr, port)
    } else {
        h.rsplit_once(':').ok_or(TargetError(MSG))?
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or(TargetError(MSG))?;
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    if !ok {
        return Err(TargetError(MSG));
    }
    Ok((host.to_owned(), port))
}

/// Percent-decoding of URL user info.
fn decode(s: &str) -> Result<String, TargetError> {
    const MSG: &str = "bad percent-encoding in the credentials";
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(TargetError(MSG))?;
            let hex = std::str::from_utf8(hex).map_err(|_| TargetError(MSG))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| TargetError(MSG))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| TargetError(MSG))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379/2").unwrap(),
            RedisTarget::Standalone { url: "redis://127.0.0.1:6379/2".into() }
        );
        assert_eq!(
            RedisTarget::parse("redis+sentinel://:p%40ss@10.0.0.1:26379,[::1]:26380/main/3").unwrap(),
            RedisTarget::Sentinel {
                sentinels: vec![("10.0.0.1".into(), 26379), ("::1".into(), 26380)],
                master: "main".into(),
                auth: Auth { username: None, password: Some("p@ss".into()) },
                db: 3,
            }
        );
        assert_eq!(
            RedisTarget::parse("redis+cluster://app:secret@r1:7000,r2:7001").unwrap(),
            RedisTarget::Cluster {
                nodes: vec![("r1".into(), 7000), ("r2".into(), 7001)],
                auth: Auth { username: Some("app".into()), password: Some("secret".into()) },
            }
        );
    }

    #[test]
    fn refuses_malformed_urls_without_echoing_them() {
        for bad in [
            "127.0.0.1:6379",
            "http://x:1",
            "redis+sentinel://h:26379",
            "redis+sentinel://h:26379/bad name",
            "redis+sentinel://h:26379/m/x",
            "redis+sentinel://h/m",
            "redis+cluster://h:0",
            "redis+cluster://h:7000/5",
            "redis+cluster://:s3cr%zz@h:7000",
            "redis+cluster://h:7000,,h2:7001",
        ] {
            let e = RedisTarget::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("s3cr"), "{e}");
        }
    }

    #[test]
    fn debug_never_prints_credentials() {
        let t = RedisTarget::parse("redis+cluster://app:hunter2@r1:7000").unwrap();
        let s = format!("{t:?} {t}");
        assert!(!s.contains("hunter2") && !s.contains("app"), "{s}");
        let RedisTarget::Cluster { auth, .. } = t else { panic!() };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
