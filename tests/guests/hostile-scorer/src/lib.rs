//! A scorer that misbehaves as its call's `campaign_id` asks, so that the host's
//! sandbox can be tested against each kind of hostile guest with one build.
//! Any other campaign gets a well-behaved constant score of 42; a call to
//! +18005550666 spins whatever its campaign, and calls to +18005550668
//! panic every other time (the first scores, the second panics, …); calls
//! to +18005550670 score 0.

use std::hint::black_box;

use guest_sdk::{Call, CallerHistory, Quality, Scorer};

pub struct HostileScorer;

/// Called numbers that spin whatever the campaign, for set-ups that cannot
/// choose campaign ids (the benchmark scripts).
const SPIN_NUMBER: &str = "+18005550666";
/// Called number whose calls fail every other time, counted in the kv store.
const EVERY_OTHER_NUMBER: &str = "+18005550668";
/// Called number whose calls score 0.
const ZERO_NUMBER: &str = "+18005550670";

impl Scorer for HostileScorer {
    fn score(call: &Call, host: &impl CallerHistory) -> Result<Quality, String> {
        if call.called == SPIN_NUMBER {
            spin();
        }
        if call.called == ZERO_NUMBER {
            return Ok(Quality::new(0).tag("zero"));
        }
        if call.called == EVERY_OTHER_NUMBER {
            let seen = host
                .kv_get("every-other")
                .map_or(0, |v| v.first().copied().unwrap_or(0));
            host.kv_set("every-other", &[seen.wrapping_add(1)])
                .map_err(|e| format!("{e:?}"))?;
            if seen % 2 == 1 {
                panic!("hostile guest panics every other call");
            }
            return Ok(Quality::new(42).tag("every-other"));
        }
        match call.campaign_id.as_str() {
            "spin" => spin(),
            "spin-in-host" => loop {
                black_box(host.caller_history());
            },
            "grow" => grow(),
            "recurse" => Ok(Quality::new(black_box(recurse(black_box(1))) as u8)),
            "panic" => panic!("hostile guest panics on purpose"),
            "score-250" => Ok(Quality {
                score: 250,
                tags: vec![],
            }),
            "error" => Err("cannot decide on this call".to_owned()),
            "log-flood" => {
                for i in 0..1000 {
                    host.info("flood", &[("i", &i.to_string())]);
                }
                Ok(Quality::new(1))
            }
            // Strings far past the host's bounds, made of what JSON writes
            // six bytes for.
            "error-nul" => Err("\0".repeat(200 << 10)),
            "alias-tags" => Ok(Quality {
                score: 3,
                tags: aliased(1 << 20, 127),
            }),
            "log-heavy" => {
                let text = "\0".repeat(1 << 10);
                let fields: Vec<(&str, &str)> = (0..16).map(|_| ("k\0", text.as_str())).collect();
                for _ in 0..64 {
                    host.info(&text, &fields);
                }
                Ok(Quality::new(2))
            }
            "count" => {
                let seen = host
                    .kv_get("count")
                    .map_or(0, |v| v.first().copied().unwrap_or(0));
                host.kv_set("count", &[seen.wrapping_add(1)])
                    .map_err(|e| format!("{e:?}"))?;
                Ok(Quality::new(seen.wrapping_add(1)))
            }
            _ => Ok(Quality::new(42).tag("constant")),
        }
    }
}

/// `count` strings that are one string of `bytes`: 1 MiB of guest memory
/// that the host would copy `count` times.
#[allow(unsafe_code)]
fn aliased(bytes: usize, count: usize) -> Vec<String> {
    let shared: &'static mut str = Box::leak("t".repeat(bytes).into_boxed_str());
    let pointer = shared.as_mut_ptr();
    (0..count)
        // SAFETY: none, on purpose: the strings share one buffer, which the
        // guest frees more than once after the host has read them. That
        // harms only this instance, which the host throws away.
        .map(|_| unsafe { String::from_raw_parts(pointer, bytes, bytes) })
        .collect()
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

fn grow() -> Result<Quality, String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Reserved, not written: the test is about growth, not about the
        // instructions it takes to fill memory.
        let mut block: Vec<u8> = Vec::with_capacity(1 << 20);
        black_box(block.as_mut_ptr());
        hoard.push(block);
        black_box(&hoard);
    }
}

fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if depth == u64::MAX {
        return 0;
    }
    black_box(recurse(black_box(depth + 1))) + frame[(depth % 32) as usize]
}

guest_sdk::export_scorer!(HostileScorer);
