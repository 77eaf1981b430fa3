//! Model-based test of the store (sled's own habit): random campaign, pool and
//! number operations applied to the store and to a `BTreeMap` model, compared
//! after every step. The number index must never disagree with the records.

use std::collections::BTreeMap;

use host::model::{BidderAccess, Campaign, NumberOwner, Pool};

use host::store::{Store, StoreError};
use proptest::prelude::*;

const NUMBERS: [&str; 6] = [
    "+18005550100",
    "+18005550101",
    "+18005550102",
    "+18005550103",
    "+18005550104",
    "+18005550105",
];

#[derive(Debug, Clone)]
enum Op {
    PutCampaign { campaign: u8, numbers: Vec<usize> },
    PutPool { campaign: u8, numbers: Vec<usize> },
    DeleteCampaign { campaign: u8 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let numbers = proptest::sample::subsequence((0..NUMBERS.len()).collect::<Vec<_>>(), 0..=3);
    prop_oneof![
        4 => (0u8..4, numbers.clone()).prop_map(|(campaign, numbers)| Op::PutCampaign { campaign, numbers }),
        2 => (0u8..4, numbers).prop_map(|(campaign, numbers)| Op::PutPool { campaign, numbers }),
        1 => (0u8..4).prop_map(|campaign| Op::DeleteCampaign { campaign }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default, Debug)]
struct Model {
    campaigns: BTreeMap<String, Vec<String>>,
    pools: BTreeMap<String, Vec<String>>,
}

impl Model {
    fn owner(&self, number: &str) -> Option<NumberOwner> {
        let in_campaign = self
            .campaigns
            .iter()
            .find(|(_, n)| n.iter().any(|x| x == number));
        let in_pool = self
            .pools
            .iter()
            .find(|(_, n)| n.iter().any(|x| x == number));
        in_campaign
            .map(|(id, _)| NumberOwner::Campaign(id.clone()))
            .or_else(|| in_pool.map(|(id, _)| NumberOwner::Pool(id.clone())))
    }

    /// The first number `numbers` takes from someone other than `me`.
    fn conflict(&self, numbers: &[String], me: &NumberOwner) -> Option<String> {
        numbers
            .iter()
            .find(|n| self.owner(n).is_some_and(|o| &o != me))
            .cloned()
    }
}

fn campaign(id: &str, numbers: Vec<String>) -> Campaign {
    Campaign {
        id: id.to_owned(),
        tenant_id: "tnt".to_owned(),
        name: id.to_owned(),
        numbers,
        floor_price_micros: 0,
        fallback_target: None,
        scorer_policy_id: None,
        selector_policy_id: None,
        shared_attribution_keys: vec![],
        bidder_access: BidderAccess::All,
        early_ringback: false,
        auction_timeout_ms: 100,
        created_at: 0,
    }
}

fn check(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let stored: BTreeMap<String, Vec<String>> = store
        .campaigns()
        .expect("list")
        .into_iter()
        .map(|c| (c.id, c.numbers))
        .collect();
    prop_assert_eq!(&stored, &model.campaigns);
    for (id, numbers) in &model.pools {
        let pool = store.pool(id).expect("pool read");
        prop_assert_eq!(pool.map(|p| p.numbers), Some(numbers.clone()));
    }
    for number in NUMBERS {
        prop_assert_eq!(
            store.number_owner(number).expect("index read"),
            model.owner(number),
            "number {}",
            number
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_a_btreemap_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("open");
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::PutCampaign { campaign: c, numbers } => {
                    let id = format!("cmp_{c}");
                    let numbers: Vec<String> = numbers.iter().map(|&i| NUMBERS[i].to_owned()).collect();
                    let result = store.put_campaign(&campaign(&id, numbers.clone()));
                    match model.conflict(&numbers, &NumberOwner::Campaign(id.clone())) {
                        Some(number) => prop_assert!(
                            matches!(&result, Err(StoreError::NumberTaken { number: n, .. }) if *n == number),
                            "{:?}", result
                        ),
                        None => {
                            prop_assert!(result.is_ok(), "{:?}", result);
                            model.campaigns.insert(id, numbers);
                        }
                    }
                }
                Op::PutPool { campaign: c, numbers } => {
                    let id = format!("cmp_{c}");
                    if !model.campaigns.contains_key(&id) {
                        continue;
                    }
                    let numbers: Vec<String> = numbers.iter().map(|&i| NUMBERS[i].to_owned()).collect();
                    let pool = Pool { campaign_id: id.clone(), numbers: numbers.clone(), ttl_s: 1800, exhausted_count: 0, holders: Default::default() };
                    let result = store.put_pool(&pool);
                    match model.conflict(&numbers, &NumberOwner::Pool(id.clone())) {
                        Some(_) => prop_assert!(matches!(result, Err(StoreError::NumberTaken { .. })), "{:?}", result),
                        None => {
                            prop_assert!(result.is_ok(), "{:?}", result);
                            model.pools.insert(id, numbers);
                        }
                    }
                }
                Op::DeleteCampaign { campaign: c } => {
                    let id = format!("cmp_{c}");
                    let deleted = store.delete_campaign(&id).expect("delete");
                    prop_assert_eq!(deleted, model.campaigns.remove(&id).is_some());
                    model.pools.remove(&id);
                }
                Op::Reopen => {
                    store.flush().expect("flush");
                    drop(store);
                    store = Store::open(dir.path()).expect("reopen");
                }
            }
            check(&store, &model)?;
        }
    }
}

/// The store serves as the policies' key-value store: namespaces apart,
/// limits enforced, values kept across a reopen.
#[test]
fn the_store_backs_policy_key_value_stores_within_their_limits() {
    use host::model::{KvRefusal, MAX_KEYS_PER_POLICY, MAX_VALUE_BYTES, PolicyKv};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    store.set("pol_a", "count", b"1").expect("set");
    assert_eq!(PolicyKv::get(&store, "pol_a", "count"), Some(b"1".to_vec()));
    assert_eq!(
        PolicyKv::get(&store, "pol_b", "count"),
        None,
        "namespaces are apart"
    );
    assert_eq!(
        store.set("pol_a", "big", &vec![0; MAX_VALUE_BYTES + 1]),
        Err(KvRefusal::TooLarge)
    );
    for i in 1..MAX_KEYS_PER_POLICY {
        store
            .set("pol_a", &format!("k{i}"), b"x")
            .expect("within quota");
    }
    assert_eq!(
        store.set("pol_a", "one-too-many", b"x"),
        Err(KvRefusal::QuotaExceeded)
    );
    store
        .set("pol_a", "count", b"2")
        .expect("overwriting an existing key is within quota");
    PolicyKv::delete(&store, "pol_a", "k1");
    store
        .set("pol_a", "room-again", b"x")
        .expect("a delete frees a slot");
    store.flush().expect("flush");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(PolicyKv::get(&store, "pol_a", "count"), Some(b"2".to_vec()));
}
