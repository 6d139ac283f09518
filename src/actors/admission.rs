//! Admission of WebSocket connections: the server-wide cap (`max_connections`,
//! lowered at startup to what the open-file limit allows) and the caps per
//! client: per signed-in user (`max_connections_per_user`) for connections
//! with a token, per peer address (`max_connections_per_ip`) for the others. A connection holds a `ConnectionSlot`
//! for its whole life; dropping it gives both places back, whether the
//! session ran or the handshake failed.
//!
//! Owns only counters: one for the server, and one per client with at least
//! one connection open (so the map is bounded by the open connections).
//! Never blocks: a refusal is immediate, and the HTTP layer answers it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::domain::UserKey;
use crate::identity::{Identity, Role};

/// Who a connection is counted against under the per-client caps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A tokenless connection, by the IP address of its TCP peer (behind a
    /// reverse proxy: the proxy's). See `ClientKey::peer`.
    Ip(IpAddr),
    /// A connection with a token, by the user it proves (its role and `sub`):
    /// all of one user's tabs and devices, wherever they connect from.
    User(Role, UserKey),
}

impl ClientKey {
    /// The key of a tokenless connection from `peer`: an IPv4 address as is
    /// (also when it arrives IPv4-mapped on an IPv6 socket), an IPv6 address
    /// by its /64 network, since one host commonly has a whole /64 to pick
    /// addresses from.
    pub fn peer(peer: IpAddr) -> ClientKey {
        match peer.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey::Ip(IpAddr::V6(network.into()))
            }
            v4 => ClientKey::Ip(v4),
        }
    }

    /// The key of a connection whose token proved `identity`.
    pub fn user(identity: &Identity) -> ClientKey {
        ClientKey::User(identity.role(), identity.user().key.clone())
    }
}

/// Why an upgrade was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` connections are open (HTTP 503).
    ServerFull,
    /// This client has its cap of connections open (HTTP 429).
    ClientFull,
}

/// The counters behind both caps. Cheap to share: `Arc<Admission>`.
#[derive(Debug)]
pub struct Admission {
    max_connections: usize,
    max_per_ip: usize,
    max_per_user: usize,
    admitted: AtomicUsize,
    per_client: DashMap<ClientKey, usize>,
}

/// One admitted connection; dropping it frees its places.
#[derive(Debug)]
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    client: Option<ClientKey>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.admission.admitted.fetch_sub(1, Ordering::AcqRel);
        if let Some(client) = self.client.take() {
            self.admission.release_client(client);
        }
    }
}

impl Admission {
    /// A per-client cap of 0 turns that cap off.
    pub fn new(max_connections: usize, max_per_ip: usize, max_per_user: usize) -> Admission {
        Admission {
            max_connections,
            max_per_ip,
            max_per_user,
            admitted: AtomicUsize::new(0),
            per_client: DashMap::new(),
        }
    }

    /// A place for one more connection of `client`, or why not. The client's
    /// cap is checked first: a client at its cap gets 429 even when the
    /// server is full too.
    pub fn admit(self: &Arc<Self>, client: Option<ClientKey>) -> Result<ConnectionSlot, Refused> {
        let client = match client {
            Some(key) if self.cap_of(&key) > 0 => {
                self.take_client(key.clone())?;
                Some(key)
            }
            _ => None,
        };
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        // From here the slot gives back whatever it took, refused or not.
        let slot = ConnectionSlot {
            admission: self.clone(),
            client,
        };
        if before < self.max_connections {
            Ok(slot)
        } else {
            Err(Refused::ServerFull)
        }
    }

    /// Connections open from `client` now.
    pub fn open_from(&self, client: &ClientKey) -> usize {
        self.per_client.get(client).map_or(0, |n| *n)
    }

    fn cap_of(&self, client: &ClientKey) -> usize {
        match client {
            ClientKey::Ip(_) => self.max_per_ip,
            ClientKey::User(..) => self.max_per_user,
        }
    }

    fn take_client(&self, key: ClientKey) -> Result<(), Refused> {
        let cap = self.cap_of(&key);
        let mut open = self.per_client.entry(key).or_insert(0);
        if *open >= cap {
            return Err(Refused::ClientFull);
        }
        *open += 1;
        Ok(())
    }

    fn release_client(&self, key: ClientKey) {
        if let Entry::Occupied(mut open) = self.per_client.entry(key) {
            *open.get_mut() = open.get().saturating_sub(1);
            if *open.get() == 0 {
                open.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<ClientKey> {
        Some(ClientKey::Ip(IpAddr::from([127, 0, 0, last])))
    }

    #[test]
    fn each_client_gets_its_cap_and_a_freed_slot_is_reusable() {
        let admission = Arc::new(Admission::new(100, 2, 0));
        let a1 = admission.admit(ip(1)).expect("first");
        let _a2 = admission.admit(ip(1)).expect("second");
        assert_eq!(admission.admit(ip(1)).err(), Some(Refused::ClientFull));
        let _b1 = admission.admit(ip(2)).expect("another client");
        drop(a1);
        let _a3 = admission.admit(ip(1)).expect("a freed slot");
        assert_eq!(
            admission.open_from(&ClientKey::Ip([127, 0, 0, 1].into())),
            2
        );
    }

    #[test]
    fn a_refusal_takes_nothing() {
        let admission = Arc::new(Admission::new(1, 5, 5));
        let _only = admission.admit(ip(1)).expect("first");
        assert_eq!(admission.admit(ip(2)).err(), Some(Refused::ServerFull));
        assert_eq!(
            admission.open_from(&ClientKey::Ip([127, 0, 0, 2].into())),
            0
        );
        assert_eq!(admission.admitted.load(Ordering::Acquire), 1);
        // The per-client map forgets clients with nothing open.
        assert_eq!(admission.per_client.len(), 1);
    }

    #[test]
    fn ipv6_peers_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ClientKey::peer(a), ClientKey::peer(b));
        assert_ne!(ClientKey::peer(a), ClientKey::peer(c));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert_eq!(
            ClientKey::peer(mapped),
            ClientKey::Ip(IpAddr::from([127, 0, 0, 1]))
        );
    }

    #[test]
    fn a_user_is_counted_by_role_and_id_under_its_own_cap() {
        let admission = Arc::new(Admission::new(100, 1, 2));
        let user =
            |role, id: &str| Some(ClientKey::User(role, UserKey::new(id).expect("valid id")));
        let _t1 = admission
            .admit(user(Role::Teacher, "ana"))
            .expect("first tab");
        let _t2 = admission
            .admit(user(Role::Teacher, "ana"))
            .expect("second tab");
        assert_eq!(
            admission.admit(user(Role::Teacher, "ana")).err(),
            Some(Refused::ClientFull)
        );
        // Another role or another user is another client; the IP cap is its own.
        let _s = admission
            .admit(user(Role::Student, "ana"))
            .expect("a student ana");
        let _b = admission.admit(user(Role::Teacher, "bo")).expect("bo");
        let _ip = admission.admit(ip(1)).expect("tokenless");
        assert_eq!(admission.admit(ip(1)).err(), Some(Refused::ClientFull));
    }

    #[test]
    fn zero_turns_the_per_client_cap_off() {
        let admission = Arc::new(Admission::new(10, 0, 0));
        let slots: Vec<_> = (0..10).map(|_| admission.admit(ip(1))).collect();
        assert!(slots.iter().all(Result::is_ok));
        assert!(admission.per_client.is_empty());
        assert_eq!(admission.admit(ip(1)).err(), Some(Refused::ServerFull));
    }
}
