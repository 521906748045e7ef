//! Request routing (RFC 6733 §6.1): Destination-Host, a realm table keyed by realm and
//! application with per-peer priority and weight, a default route, route actions (local,
//! relay, proxy, redirect), loop detection over Route-Record, and the client-side cache of
//! redirect answers (§6.13, Redirect-Host-Usage).
//!
//! Pure: the caller says which peers are open; decisions come back as values.

use diameter_codec::ResultCode;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a realm route does with a request (RFC 6733 §2.7, Local Action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAction {
    /// Handled by this node.
    Local,
    /// Forwarded unchanged but for routing AVPs (relay agent, §2.8.1).
    Relay,
    /// Forwarded, possibly modified by policy (proxy agent, §2.8.2).
    Proxy,
    /// Answered 3006 with Redirect-Host (redirect agent, §2.8.3).
    Redirect,
}

/// One next hop of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePeer {
    /// The peer's Origin-Host (DiameterIdentity).
    pub host: String,
    /// Lower is preferred.
    pub priority: u32,
    /// Share of traffic among peers of equal priority.
    pub weight: u32,
}

/// A realm route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The realm, or `*` for the default route.
    pub realm: String,
    /// The application, or `None` for any.
    pub application: Option<u32>,
    /// The action.
    pub action: RouteAction,
    /// Next hops (or, for [`RouteAction::Redirect`], the hosts to redirect to).
    pub peers: Vec<RoutePeer>,
    /// Redirect-Host-Usage for redirect routes.
    pub redirect_usage: RedirectUsage,
    /// Redirect-Max-Cache-Time for redirect routes.
    pub redirect_cache_time: Duration,
}

/// Redirect-Host-Usage (RFC 6733 §6.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectUsage {
    /// 0: do not cache.
    DontCache,
    /// 1: all messages of the session.
    AllSession,
    /// 2: all messages to the realm.
    AllRealm,
    /// 3: realm and application.
    RealmAndApplication,
    /// 4: all messages of the application.
    AllApplication,
    /// 5: all messages to the host.
    AllHost,
    /// 6: all messages of the user.
    AllUser,
}

impl RedirectUsage {
    /// From the AVP value; unknown values are treated as DONT_CACHE.
    pub fn from_value(v: i32) -> Self {
        match v {
            1 => Self::AllSession,
            2 => Self::AllRealm,
            3 => Self::RealmAndApplication,
            4 => Self::AllApplication,
            5 => Self::AllHost,
            6 => Self::AllUser,
            _ => Self::DontCache,
        }
    }
    /// The AVP value.
    pub fn value(self) -> i32 {
        match self {
            Self::DontCache => 0,
            Self::AllSession => 1,
            Self::AllRealm => 2,
            Self::RealmAndApplication => 3,
            Self::AllApplication => 4,
            Self::AllHost => 5,
            Self::AllUser => 6,
        }
    }
}

/// What routing needs to know of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    /// Destination-Host.
    pub destination_host: Option<&'a str>,
    /// Destination-Realm.
    pub destination_realm: Option<&'a str>,
    /// Application-Id of the header.
    pub application_id: u32,
    /// Session-Id.
    pub session_id: Option<&'a str>,
    /// User-Name.
    pub user_name: Option<&'a str>,
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Handle locally.
    Local,
    /// Send to this peer; `action` says whether we relay or proxy.
    Forward {
        /// The chosen peer's host.
        peer: String,
        /// Relay or Proxy.
        action: RouteAction,
    },
    /// Answer 3006 with these Redirect-Host URIs.
    Redirect {
        /// Hosts to redirect to.
        hosts: Vec<String>,
        /// Redirect-Host-Usage.
        usage: RedirectUsage,
        /// Redirect-Max-Cache-Time.
        cache_time: Duration,
    },
    /// Answer with this protocol error (E bit).
    Error(ResultCode),
}

fn eq_ident(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The routing table of a node.
#[derive(Debug, Clone)]
pub struct Router {
    /// Our Origin-Host.
    pub host: String,
    /// Our Origin-Realm.
    pub realm: String,
    /// Applications handled locally.
    pub local_applications: Vec<u32>,
    /// Whether this node is an agent (relay/proxy/redirect): agents check Route-Record.
    pub is_agent: bool,
    routes: Vec<Route>,
    rr: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Router {
    /// A router for a node with this identity.
    pub fn new(host: impl Into<String>, realm: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            realm: realm.into(),
            local_applications: Vec::new(),
            is_agent: false,
            routes: Vec::new(),
            rr: Default::default(),
        }
    }

    /// Adds a route; the most specific matching route wins (realm + application, then
    /// realm, then the default `*`).
    pub fn add_route(&mut self, route: Route) {
        self.routes.push(route);
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// RFC 6733 §6.1.3: "…if one of the Route-Record AVPs contains the identity of the
    /// agent, then the request is looped and the agent MUST answer with 3005".
    pub fn is_loop<'a>(&self, route_records: impl IntoIterator<Item = &'a str>) -> bool {
        route_records.into_iter().any(|r| eq_ident(r, &self.host))
    }

    /// The route that applies to (realm, application).
    pub fn find_route(&self, realm: &str, app: u32) -> Option<&Route> {
        let exact = self
            .routes
            .iter()
            .find(|r| eq_ident(&r.realm, realm) && r.application == Some(app));
        let realm_any = || {
            self.routes
                .iter()
                .find(|r| eq_ident(&r.realm, realm) && r.application.is_none())
        };
        let default = || {
            self.routes
                .iter()
                .find(|r| r.realm == "*" && r.application.is_none_or(|a| a == app))
        };
        exact.or_else(realm_any).or_else(default)
    }

    /// Decides where a request goes. `is_open(host)` says whether a peer connection to
    /// `host` is open; `is_known(host)` whether `host` is a configured peer at all.
    pub fn decide(
        &self,
        req: &RequestInfo<'_>,
        is_open: impl Fn(&str) -> bool,
        is_known: impl Fn(&str) -> bool,
    ) -> Decision {
        self.decide_for(req, true, is_open, is_known)
    }

    /// Where a request this node originates goes: never to itself, so its own realm is
    /// routed by the table like any other (a PCEF and its PCRF often share a realm).
    pub fn decide_outgoing(
        &self,
        req: &RequestInfo<'_>,
        is_open: impl Fn(&str) -> bool,
        is_known: impl Fn(&str) -> bool,
    ) -> Decision {
        self.decide_for(req, false, is_open, is_known)
    }

    fn decide_for(
        &self,
        req: &RequestInfo<'_>,
        local_ok: bool,
        is_open: impl Fn(&str) -> bool,
        is_known: impl Fn(&str) -> bool,
    ) -> Decision {
        let local = |app| {
            if local_ok {
                self.local_or_unsupported(app)
            } else {
                Decision::Error(ResultCode::DIAMETER_UNABLE_TO_DELIVER)
            }
        };
        // bad-inputs 37: Destination-Host without Destination-Realm cannot be routed.
        if req.destination_host.is_some() && req.destination_realm.is_none() {
            return Decision::Error(ResultCode::DIAMETER_UNABLE_TO_DELIVER);
        }
        // §6.1.4: a request for us is processed locally.
        if let Some(h) = req.destination_host {
            if eq_ident(h, &self.host) {
                return local(req.application_id);
            }
            // §6.1.5: a Destination-Host that is one of our open peers gets it directly.
            if is_open(h) {
                return Decision::Forward {
                    peer: h.to_string(),
                    action: RouteAction::Relay,
                };
            }
            // A configured peer that is down: the request is pinned to it (faults.md: 3002).
            if is_known(h) {
                return Decision::Error(ResultCode::DIAMETER_UNABLE_TO_DELIVER);
            }
        }
        let realm = req.destination_realm.unwrap_or(&self.realm);
        if local_ok
            && req.destination_host.is_none()
            && eq_ident(realm, &self.realm)
            && self.local_applications.contains(&req.application_id)
        {
            return Decision::Local;
        }
        let Some(route) = self.find_route(realm, req.application_id) else {
            // §6.1.6 / §7.1.3: 3003 DIAMETER_REALM_NOT_SERVED.
            return if local_ok && eq_ident(realm, &self.realm) {
                self.local_or_unsupported(req.application_id)
            } else {
                Decision::Error(ResultCode::DIAMETER_REALM_NOT_SERVED)
            };
        };
        match route.action {
            RouteAction::Local => local(req.application_id),
            RouteAction::Redirect => Decision::Redirect {
                hosts: route.peers.iter().map(|p| p.host.clone()).collect(),
                usage: route.redirect_usage,
                cache_time: route.redirect_cache_time,
            },
            action => match self.pick(&route.peers, &is_open) {
                Some(peer) => Decision::Forward { peer, action },
                None => Decision::Error(ResultCode::DIAMETER_UNABLE_TO_DELIVER),
            },
        }
    }

    fn local_or_unsupported(&self, app: u32) -> Decision {
        if self.local_applications.contains(&app) {
            Decision::Local
        } else {
            Decision::Error(ResultCode::DIAMETER_APPLICATION_UNSUPPORTED)
        }
    }

    /// Picks an open peer: the lowest priority value, then weighted round robin.
    pub fn pick(&self, peers: &[RoutePeer], is_open: &impl Fn(&str) -> bool) -> Option<String> {
        let best = peers
            .iter()
            .filter(|p| is_open(&p.host))
            .map(|p| p.priority)
            .min()?;
        let tier: Vec<&RoutePeer> = peers
            .iter()
            .filter(|p| p.priority == best && is_open(&p.host))
            .collect();
        let total: u64 = tier.iter().map(|p| u64::from(p.weight.max(1))).sum();
        let n = self.rr.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut slot = n % total;
        for p in &tier {
            let w = u64::from(p.weight.max(1));
            if slot < w {
                return Some(p.host.clone());
            }
            slot -= w;
        }
        tier.first().map(|p| p.host.clone())
    }

    /// Alternates for failover: open peers of the request's route other than `failed`.
    pub fn alternates(
        &self,
        req: &RequestInfo<'_>,
        failed: &str,
        is_open: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let realm = req.destination_realm.unwrap_or(&self.realm);
        let route = self.find_route(realm, req.application_id)?;
        if !matches!(route.action, RouteAction::Relay | RouteAction::Proxy) {
            return None;
        }
        self.pick(&route.peers, &|h: &str| !eq_ident(h, failed) && is_open(h))
    }
}

/// Client-side cache of redirect answers (RFC 6733 §6.13).
#[derive(Debug, Default)]
pub struct RedirectCache {
    entries: HashMap<(RedirectUsage, String), (Vec<String>, Instant)>,
    capacity: usize,
}

/// §6.13: "…the order of precedence … ALL_SESSION, ALL_USER, REALM_AND_APPLICATION,
/// ALL_REALM, ALL_APPLICATION, ALL_HOST".
const PRECEDENCE: [RedirectUsage; 6] = [
    RedirectUsage::AllSession,
    RedirectUsage::AllUser,
    RedirectUsage::RealmAndApplication,
    RedirectUsage::AllRealm,
    RedirectUsage::AllApplication,
    RedirectUsage::AllHost,
];

fn cache_key(usage: RedirectUsage, req: &RequestInfo<'_>) -> Option<String> {
    match usage {
        RedirectUsage::DontCache => None,
        RedirectUsage::AllSession => req.session_id.map(str::to_string),
        RedirectUsage::AllRealm => req.destination_realm.map(str::to_ascii_lowercase),
        RedirectUsage::RealmAndApplication => req
            .destination_realm
            .map(|r| format!("{}|{}", r.to_ascii_lowercase(), req.application_id)),
        RedirectUsage::AllApplication => Some(req.application_id.to_string()),
        RedirectUsage::AllHost => req.destination_host.map(str::to_ascii_lowercase),
        RedirectUsage::AllUser => req.user_name.map(str::to_string),
    }
}

impl RedirectCache {
    /// A cache of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers a redirect answer for the request that got it. DONT_CACHE and a cache
    /// time of 0 store nothing.
    pub fn insert(
        &mut self,
        req: &RequestInfo<'_>,
        usage: RedirectUsage,
        hosts: Vec<String>,
        cache_time: Duration,
        now: Instant,
    ) {
        let Some(k) = cache_key(usage, req) else {
            return;
        };
        if cache_time.is_zero() || hosts.is_empty() {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, exp)| *exp > now);
            if self.entries.len() >= self.capacity {
                // Still full: drop the entry closest to expiry.
                if let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&k);
                }
            }
        }
        let expiry = now
            .checked_add(cache_time)
            .unwrap_or(now + Duration::from_secs(u32::MAX.into()));
        self.entries.insert((usage, k), (hosts, expiry));
    }

    /// The cached redirect hosts that apply to a request, by §6.13 precedence.
    pub fn lookup(&self, req: &RequestInfo<'_>, now: Instant) -> Option<&[String]> {
        // Most nodes never see a redirect: skip building the keys.
        if self.entries.is_empty() {
            return None;
        }
        PRECEDENCE.iter().find_map(|&u| {
            let k = cache_key(u, req)?;
            match self.entries.get(&(u, k)) {
                Some((hosts, exp)) if *exp > now => Some(hosts.as_slice()),
                _ => None,
            }
        })
    }

    /// Number of entries (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(h: &str, priority: u32, weight: u32) -> RoutePeer {
        RoutePeer {
            host: h.into(),
            priority,
            weight,
        }
    }

    fn router() -> Router {
        let mut r = Router::new("dra.example", "example");
        r.is_agent = true;
        r.add_route(Route {
            realm: "home.example".into(),
            application: Some(16777238),
            action: RouteAction::Relay,
            peers: vec![
                peer("pcrf1.home.example", 1, 1),
                peer("pcrf2.home.example", 2, 1),
            ],
            redirect_usage: RedirectUsage::DontCache,
            redirect_cache_time: Duration::ZERO,
        });
        r.add_route(Route {
            realm: "redir.example".into(),
            application: None,
            action: RouteAction::Redirect,
            peers: vec![peer("aaa://pcrf.redir.example", 1, 1)],
            redirect_usage: RedirectUsage::AllSession,
            redirect_cache_time: Duration::from_secs(60),
        });
        r
    }

    #[test]
    fn realm_priority_and_failover() {
        let r = router();
        let req = RequestInfo {
            destination_realm: Some("HOME.example"),
            application_id: 16777238,
            ..Default::default()
        };
        let all = |_: &str| true;
        assert_eq!(
            r.decide(&req, all, all),
            Decision::Forward {
                peer: "pcrf1.home.example".into(),
                action: RouteAction::Relay
            }
        );
        let only2 = |h: &str| h == "pcrf2.home.example";
        assert_eq!(
            r.decide(&req, only2, all),
            Decision::Forward {
                peer: "pcrf2.home.example".into(),
                action: RouteAction::Relay
            }
        );
        assert_eq!(
            r.alternates(&req, "pcrf1.home.example", all),
            Some("pcrf2.home.example".into())
        );
        let none = |_: &str| false;
        assert_eq!(
            r.decide(&req, none, all),
            Decision::Error(ResultCode::DIAMETER_UNABLE_TO_DELIVER)
        );
    }

    #[test]
    fn errors() {
        let r = router();
        let all = |_: &str| true;
        let unknown = RequestInfo {
            destination_realm: Some("nowhere.example"),
            application_id: 4,
            ..Default::default()
        };
        assert_eq!(
            r.decide(&unknown, all, all),
            Decision::Error(ResultCode::DIAMETER_REALM_NOT_SERVED)
        );
        let host_only = RequestInfo {
            destination_host: Some("x"),
            ..Default::default()
        };
        assert_eq!(
            r.decide(&host_only, all, all),
            Decision::Error(ResultCode::DIAMETER_UNABLE_TO_DELIVER)
        );
        let pinned = RequestInfo {
            destination_host: Some("pcrf1.home.example"),
            destination_realm: Some("home.example"),
            application_id: 16777238,
            ..Default::default()
        };
        assert_eq!(
            r.decide(&pinned, |_| false, all),
            Decision::Error(ResultCode::DIAMETER_UNABLE_TO_DELIVER)
        );
        assert!(r.is_loop(["a.example", "DRA.example"]));
        assert!(!r.is_loop(["a.example"]));
    }

    #[test]
    fn own_realm_outgoing_goes_by_the_table() {
        // A PCEF and its PCRF in one realm: the PCEF's own requests are never "local".
        let mut r = Router::new("pcef.example", "home.example");
        r.local_applications.push(16777238);
        let all = |_: &str| true;
        let req = RequestInfo {
            destination_realm: Some("home.example"),
            application_id: 16777238,
            ..Default::default()
        };
        assert_eq!(r.decide(&req, all, all), Decision::Local);
        assert_eq!(
            r.decide_outgoing(&req, all, all),
            Decision::Error(ResultCode::DIAMETER_REALM_NOT_SERVED)
        );
        r.add_route(Route {
            realm: "home.example".into(),
            application: None,
            action: RouteAction::Relay,
            peers: vec![peer("pcrf.home.example", 1, 1)],
            redirect_usage: RedirectUsage::DontCache,
            redirect_cache_time: Duration::ZERO,
        });
        assert_eq!(
            r.decide_outgoing(&req, all, all),
            Decision::Forward {
                peer: "pcrf.home.example".into(),
                action: RouteAction::Relay
            }
        );
    }

    #[test]
    fn weights() {
        let r = Router::new("c", "r");
        let peers = [peer("a", 1, 3), peer("b", 1, 1)];
        let picks: Vec<String> = (0..8)
            .filter_map(|_| r.pick(&peers, &|_: &str| true))
            .collect();
        assert_eq!(picks.iter().filter(|p| *p == "a").count(), 6);
    }

    #[test]
    fn redirect_and_cache() {
        let r = router();
        let req = RequestInfo {
            destination_realm: Some("redir.example"),
            session_id: Some("s1"),
            application_id: 4,
            ..Default::default()
        };
        let all = |_: &str| true;
        let Decision::Redirect {
            hosts,
            usage,
            cache_time,
        } = r.decide(&req, all, all)
        else {
            panic!()
        };
        let now = Instant::now();
        let mut c = RedirectCache::new(2);
        c.insert(&req, usage, hosts.clone(), cache_time, now);
        assert_eq!(c.lookup(&req, now), Some(hosts.as_slice()));
        assert_eq!(c.lookup(&req, now + Duration::from_secs(61)), None);
        c.insert(
            &req,
            RedirectUsage::AllRealm,
            hosts.clone(),
            Duration::ZERO,
            now,
        );
        c.insert(
            &req,
            RedirectUsage::DontCache,
            hosts.clone(),
            Duration::from_secs(5),
            now,
        );
        assert_eq!(c.len(), 1);
        let other = RequestInfo {
            session_id: Some("s2"),
            ..req
        };
        assert_eq!(c.lookup(&other, now), None);
    }
}
