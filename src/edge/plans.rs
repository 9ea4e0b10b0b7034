//! Planning some twins again (a pulled metadata change, a driver image's labels, a driver
//! token's answer) without touching the others.

use super::desired::Source;
use super::state::State;
use crate::drivers::plan_twins;

impl State {
    /// Plans again the twin whose metadata changed, the twin it is attached to and the twins
    /// attached to either (a camera child's parent plans its cameras): no other twin.
    pub(super) fn replan_around(&mut self, twin: &str) {
        let Some(d) = &self.desired else {
            return;
        };
        let family = crate::twins::linkage::family_of(&d.twins, twin);
        self.replan(family);
    }

    /// Twins whose driver image's labels became known or changed: planned again.
    pub(super) fn replan_discovered(&mut self) {
        let twins = self.drivers.take_replans();
        if !twins.is_empty() {
            self.replan(twins);
        }
    }

    /// Plans these twins again (those still planned).
    pub(super) fn replan(&mut self, twins: Vec<String>) {
        let Some(d) = &self.desired else {
            return;
        };
        let planned: Vec<&str> = self.drivers.planned().collect();
        let affected: Vec<String> = twins
            .into_iter()
            .filter(|t| planned.contains(&t.as_str()))
            .collect();
        if affected.is_empty() {
            return;
        }
        let plans = plan_twins(&d.twins, &d.assets, &affected, &self.drivers.ctx);
        let provisional = !self.local && d.source == Source::Cache;
        self.drivers.replan(&mut self.runtime, plans, provisional);
    }
}
