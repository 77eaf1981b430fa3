//! A small authoritative DNS server on 127.0.0.1 for tests that locate
//! targets by name (RFC 3263): it answers A, AAAA and SRV questions from a
//! fixed zone over UDP, as a buyer's name server would.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record};

/// Records by owner name.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    records: Vec<(Name, RData)>,
}

fn name(text: &str) -> Name {
    let text = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    Name::from_str(&text).expect("a DNS name")
}

impl Zone {
    pub fn address(mut self, owner: &str, ip: IpAddr) -> Self {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.records.push((name(owner), data));
        self
    }

    /// `_sip._tcp.example.test` → `target:port`.
    pub fn service(mut self, owner: &str, priority: u16, port: u16, target: &str) -> Self {
        let data = RData::SRV(SRV::new(priority, 10, port, name(target)));
        self.records.push((name(owner), data));
        self
    }
}

/// The running server; dropping it stops it.
pub struct DnsServer {
    pub address: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsServer {
    pub async fn start(zone: Zone) -> DnsServer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind DNS");
        let address = socket.local_addr().expect("address");
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        let zone = Arc::new(Mutex::new(zone));
        let served = zone.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            loop {
                let Ok((length, from)) = socket.recv_from(&mut buffer).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buffer[..length]) else {
                    continue;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                let response = answer(&served.lock().expect("zone"), &query);
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        DnsServer {
            address,
            zone,
            queries,
            task,
        }
    }

    /// Answers from `zone` from now on.
    pub fn publish(&self, zone: Zone) {
        *self.zone.lock().expect("zone") = zone;
    }

    /// Questions asked so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

fn answer(zone: &Zone, query: &Message) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    let mut known = false;
    for question in query.queries() {
        response.add_query(question.clone());
        for (owner, data) in &zone.records {
            if owner == question.name() {
                known = true;
                if data.record_type() == question.query_type() {
                    response.add_answer(Record::from_rdata(owner.clone(), 60, data.clone()));
                }
            }
        }
    }
    if !known {
        response.set_response_code(ResponseCode::NXDomain);
    }
    response
}
