//! Connection setup, measured apart from request latency: how long each
//! TCP connect and each TLS handshake took (µs), one sample per connection
//! made. Cumulative like a request's latency; merged exactly (histograms
//! add); sent incrementally as differences from the acknowledged state
//! (`ConnectionsDelta`), like a request name's figures.

use serde::{Deserialize, Serialize};

use super::Packed;
use crate::histogram::{self, Latency};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connections {
    /// TCP connect time of every connection made: connected and, for
    /// https, its handshake done (its count is the connections opened; a
    /// connection whose connect or handshake failed is an error of the
    /// request that waited for it, not a connection).
    #[serde(with = "histogram::b64")]
    pub connect: Latency,
    /// TLS handshake time of every handshake completed (https targets).
    #[serde(with = "histogram::b64")]
    pub tls_handshake: Latency,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            connect: histogram::new_latency(),
            tls_handshake: histogram::new_latency(),
        }
    }
}

impl Connections {
    pub fn is_empty(&self) -> bool {
        self.connect.is_empty() && self.tls_handshake.is_empty()
    }

    pub fn opened(&self) -> u64 {
        self.connect.len()
    }

    pub fn merge(&mut self, o: &Connections) {
        self.connect
            .add(&o.connect)
            .expect("auto-resizing histograms always add");
        self.tls_handshake
            .add(&o.tls_handshake)
            .expect("auto-resizing histograms always add");
    }

    /// Counts that identify the state: both only grow.
    pub fn counts(&self) -> (u64, u64) {
        (self.connect.len(), self.tls_handshake.len())
    }
}

/// What connections a runner made since the acknowledged state, as plain
/// V2 histogram differences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsDelta {
    pub connect: Packed,
    pub tls_handshake: Packed,
}

/// The acknowledged state, kept compact (plain wire form).
#[derive(Clone, Debug)]
pub struct ConnectionsBase {
    counts: (u64, u64),
    connect: Packed,
    tls_handshake: Packed,
}

impl ConnectionsBase {
    pub fn of(c: &Connections) -> ConnectionsBase {
        ConnectionsBase {
            counts: c.counts(),
            connect: Packed::plain(&c.connect),
            tls_handshake: Packed::plain(&c.tls_handshake),
        }
    }

    pub fn footprint(&self) -> usize {
        self.connect.encoded_len() + self.tls_handshake.encoded_len()
    }
}

impl ConnectionsDelta {
    /// `cur` minus `base`: `Some(None)` when nothing changed, `None` when
    /// they do not fit together (a histogram shrank).
    pub fn between(base: Option<&ConnectionsBase>, cur: &Connections) -> Option<Option<Self>> {
        let (mut connect, mut tls) = (cur.connect.clone(), cur.tls_handshake.clone());
        if let Some(b) = base {
            if b.counts == cur.counts() {
                return Some(None);
            }
            connect.subtract(b.connect.unpack().ok()?).ok()?;
            tls.subtract(b.tls_handshake.unpack().ok()?).ok()?;
        } else if cur.is_empty() {
            return Some(None);
        }
        Some(Some(ConnectionsDelta {
            connect: Packed::plain(&connect),
            tls_handshake: Packed::plain(&tls),
        }))
    }

    /// Decoded, checked as any histogram from a runner is (`decode`).
    pub fn read(&self) -> Result<Connections, String> {
        Ok(Connections {
            connect: self.connect.unpack()?,
            tls_handshake: self.tls_handshake.unpack()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(samples: &[(u64, Option<u64>)]) -> Connections {
        let mut c = Connections::default();
        for &(connect, tls) in samples {
            histogram::record(&mut c.connect, connect);
            if let Some(t) = tls {
                histogram::record(&mut c.tls_handshake, t);
            }
        }
        c
    }

    #[test]
    fn differences_add_up_to_the_whole_and_nothing_new_sends_nothing() {
        let early = [(120, Some(900)), (80, Some(1_500))];
        let before = with(&early);
        let mut all = early.to_vec();
        all.extend([(3_000, Some(40_000)), (95, None)]);
        let now = with(&all);
        let base = ConnectionsBase::of(&before);
        let d = ConnectionsDelta::between(Some(&base), &now)
            .unwrap()
            .unwrap();
        // Through the wire, as the caller reads it.
        let d: ConnectionsDelta =
            serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        let mut merged = before.clone();
        merged.merge(&d.read().unwrap());
        assert_eq!(merged, now);
        assert_eq!((merged.opened(), merged.tls_handshake.len()), (4, 3));
        let same = ConnectionsBase::of(&now);
        assert_eq!(ConnectionsDelta::between(Some(&same), &now), Some(None));
        assert_eq!(
            ConnectionsDelta::between(None, &Connections::default()),
            Some(None)
        );
        // A runner whose figures shrank does not fit its base: from the start.
        assert_eq!(ConnectionsDelta::between(Some(&same), &before), None);
    }
}
