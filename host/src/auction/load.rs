//! How many calls each target is on, counted atomically across every call
//! being set up, so that `max_concurrent` holds under simultaneous calls.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct TargetLoad {
    active: Mutex<HashMap<String, u32>>,
}

impl TargetLoad {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one of the target's `max` places (0 = no limit); false when all are taken.
    pub fn try_acquire(&self, target_id: &str, max: u32) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let count = active.entry(target_id.to_owned()).or_default();
        if max > 0 && *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    pub fn release(&self, target_id: &str) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = active.get_mut(target_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                active.remove(target_id);
            }
        }
    }

    /// Calls the target is on now.
    pub fn active(&self, target_id: &str) -> u32 {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.get(target_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_target_refuses_until_a_place_is_released() {
        let load = TargetLoad::new();
        assert!(load.try_acquire("t", 2));
        assert!(load.try_acquire("t", 2));
        assert!(!load.try_acquire("t", 2));
        load.release("t");
        assert!(load.try_acquire("t", 2));
        assert_eq!(load.active("t"), 2);
        assert!(load.try_acquire("u", 0), "0 means no limit");
    }
}
