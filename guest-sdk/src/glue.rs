//! Glue between one world's generated bindings and the SDK types, expanded
//! once per world module (each world's bindings carry their own copies of the
//! WIT types).

/// Expands, inside a world module that ran `wit_bindgen::generate!`, to the
/// conversions between generated and SDK types and to `WasmHost`, the
/// [`crate::Host`] backed by the real imports.
macro_rules! world_glue {
    () => {
        use self::plugboard::policy::{kv as wit_kv, log as wit_log, types as wit};

        impl From<wit::Geography> for crate::Geography {
            fn from(g: wit::Geography) -> Self {
                crate::Geography {
                    country: g.country,
                    area_code: g.area_code,
                    region: g.region,
                    time_zone: g.time_zone,
                }
            }
        }

        impl From<wit::CallTime> for crate::CallTime {
            fn from(t: wit::CallTime) -> Self {
                crate::CallTime {
                    unix_seconds: t.unix_seconds,
                    local_weekday: t.local_weekday,
                    local_hour: t.local_hour,
                    local_minute: t.local_minute,
                }
            }
        }

        impl From<wit::Attribute> for crate::Attribute {
            fn from(a: wit::Attribute) -> Self {
                crate::Attribute {
                    key: a.key,
                    value: a.value,
                }
            }
        }

        impl From<wit::Quality> for crate::Quality {
            fn from(q: wit::Quality) -> Self {
                crate::Quality {
                    score: q.score,
                    tags: q.tags,
                }
            }
        }

        impl From<crate::Quality> for wit::Quality {
            fn from(q: crate::Quality) -> Self {
                wit::Quality {
                    score: q.score,
                    tags: q.tags,
                }
            }
        }

        impl From<wit::Call> for crate::Call {
            fn from(c: wit::Call) -> Self {
                crate::Call {
                    id: c.id,
                    campaign_id: c.campaign_id,
                    caller: c.caller,
                    called: c.called,
                    caller_geography: c.caller_geography.into(),
                    time: c.time.into(),
                    headers: c
                        .headers
                        .into_iter()
                        .map(|h| crate::Header {
                            name: h.name,
                            value: h.value,
                        })
                        .collect(),
                    attribution: c.attribution.into_iter().map(Into::into).collect(),
                }
            }
        }

        /// The host as the real imports provide it.
        pub struct WasmHost;

        impl crate::Host for WasmHost {
            fn log(&self, level: crate::Level, message: &str, fields: &[(&str, &str)]) {
                let level = match level {
                    crate::Level::Trace => wit_log::Level::Trace,
                    crate::Level::Debug => wit_log::Level::Debug,
                    crate::Level::Info => wit_log::Level::Info,
                    crate::Level::Warn => wit_log::Level::Warn,
                    crate::Level::Error => wit_log::Level::Error,
                };
                let fields: Vec<(String, String)> = fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                wit_log::emit(level, message, &fields);
            }

            fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
                wit_kv::get(key)
            }

            fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), crate::KvError> {
                wit_kv::set(key, value).map_err(|e| match e {
                    wit_kv::Error::TooLarge => crate::KvError::TooLarge,
                    wit_kv::Error::QuotaExceeded => crate::KvError::QuotaExceeded,
                    wit_kv::Error::Other(reason) => crate::KvError::Other(reason),
                })
            }

            fn kv_delete(&self, key: &str) {
                wit_kv::delete(key);
            }
        }
    };
    (with caller history) => {
        world_glue!();

        impl crate::CallerHistory for WasmHost {
            fn caller_history(&self) -> crate::History {
                let h = self::plugboard::policy::caller_history::lookup();
                crate::History {
                    calls_seen: h.calls_seen,
                    last_seen_unix_seconds: h.last_seen_unix_seconds,
                    conversions: h.conversions,
                }
            }
        }
    };
}
