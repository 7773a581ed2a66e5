//! Tracking plans in the browser: `pattern` keywords compiled by the browser's own
//! `RegExp`, so that the package ships no regex engine (the core is built without its
//! `regex` feature), and the plan options of `Trailhound.load`.
//!
//! Loading a plan refuses every pattern whose meaning differs between JavaScript's
//! `RegExp` with the `u` flag and the native engine before it reaches either, and both
//! engines let `.` match a newline (flag `s` here), so a pattern gives the same verdict
//! on every platform. The package checks a plan's structure, as the native SDKs do; what
//! the plan means is `trailhound plan lint`'s, in CI.
//!
//! Plans are the `plans` feature's (on by default). `wasm/build.sh` builds the package
//! twice: with plans, and without (what a page loads when `Trailhound.load` is given no
//! `plan`: about a seventh smaller, see `wasm/README.md`); `js/index.js` picks the build.

#[cfg(feature = "plans")]
pub use with_plans::*;
#[cfg(not(feature = "plans"))]
pub use without_plans::*;

#[cfg(feature = "plans")]
mod with_plans {
    use std::sync::Arc;

    use js_sys::RegExp;
    use trailhound_core::plan::{Pattern, PatternEngine, Plan, PlanGate, PlanMode};
    use trailhound_core::Policy;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;

    use crate::platform::{self, get};

    /// The plan a client applies.
    pub type Gate = PlanGate;

    /// Compiles `pattern` keywords with JavaScript's `RegExp`, flags `su`: `.` matches
    /// newlines (as natively), and the pattern is read as Unicode code points.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct JsEngine;

    /// A compiled `RegExp`.
    #[derive(Debug)]
    struct JsPattern(RegExp);

    // SAFETY: `Pattern` must be Send + Sync because native plans are shared between threads.
    // A JS object can only be used on the thread that made it, but this build has one thread:
    // wasm32-unknown-unknown without the `atomics` target feature cannot start another, so
    // the value is never sent or shared across threads. With `atomics` (a threaded build)
    // these impls do not exist and the crate does not compile, rather than be unsound.
    #[cfg(not(target_feature = "atomics"))]
    unsafe impl Send for JsPattern {}
    // SAFETY: as for Send above. `test` with flags `su` (no `g`, no `y`) also keeps no state
    // between calls (`lastIndex` is neither read nor written), so shared use sees no change.
    #[cfg(not(target_feature = "atomics"))]
    unsafe impl Sync for JsPattern {}

    impl Pattern for JsPattern {
        fn is_match(&self, s: &str) -> bool {
            self.0.test(s)
        }
    }

    impl PatternEngine for JsEngine {
        fn compile(&self, pattern: &str) -> Result<Box<dyn Pattern>, String> {
            let re = platform::regexp(pattern).map_err(|e| platform::error_text(&e))?;
            Ok(Box::new(JsPattern(re.unchecked_into())))
        }
    }

    /// The plan options of `Trailhound.load`: `plan` (its JSON text, or the object) and
    /// `planMode` (`off`, `report` by default, `enforce`, `enforce_strip`). `None` without a
    /// plan. Refuses a plan it cannot read or apply with the text of its `PlanError` (which
    /// names the place).
    pub fn gate_from(opts: &JsValue, policy: &mut Policy) -> Result<Option<PlanGate>, String> {
        let mode = get(opts, "planMode");
        if !mode.is_undefined() && !mode.is_null() {
            let name = mode.as_string().unwrap_or_default();
            policy.plan_mode = PlanMode::parse(&name).ok_or_else(|| {
                format!(
                    "planMode must be one of \"off\", \"report\", \"enforce\", \"enforce_strip\"; \
                     got {name:?}"
                )
            })?;
        }
        let plan = get(opts, "plan");
        let json = if plan.is_undefined() || plan.is_null() {
            return Ok(None);
        } else if let Some(text) = plan.as_string() {
            text
        } else if plan.is_object() {
            platform::stringify(&plan, "plan").map_err(|e| platform::error_text(&e))?
        } else {
            return Err("plan must be the plan's JSON text or an object".into());
        };
        let plan = Plan::load_with(&json, &JsEngine).map_err(|e| e.to_string())?;
        Ok(Some(PlanGate::new(
            Arc::new(plan),
            policy.plan_mode,
            policy.max_violation_kinds,
        )))
    }
}

#[cfg(not(feature = "plans"))]
mod without_plans {
    use trailhound_core::plan::{Verdict, ViolationCount};
    use trailhound_core::{Message, Notification, Policy};
    use wasm_bindgen::JsValue;

    use crate::platform::get;

    /// No plan can be loaded in this build: a client's gate is always `None`, and the
    /// code that applies one is left out.
    #[derive(Debug)]
    pub enum Gate {}

    impl Gate {
        /// Never called: there is no gate.
        pub fn judge(&self, _msg: &mut Message) -> Verdict {
            match *self {}
        }

        /// Never called: there is no gate.
        pub fn settle(&self, _verdict: Verdict, _message_id: &str) -> Vec<Notification> {
            match *self {}
        }

        /// Never called: there is no gate.
        pub fn counts(&self) -> Vec<ViolationCount> {
            match *self {}
        }
    }

    /// Refuses a `plan` (and a `planMode`): `js/index.js` loads the build with plans for
    /// those, so only a page that loads this build directly gets here.
    pub fn gate_from(opts: &JsValue, _policy: &mut Policy) -> Result<Option<Gate>, String> {
        for key in ["plan", "planMode"] {
            let v = get(opts, key);
            if !v.is_undefined() && !v.is_null() {
                return Err(format!(
                    "{key}: this build of the package has no tracking plans; load it through \
                     the package's index.js, which loads the build with plans when given one"
                ));
            }
        }
        Ok(None)
    }
}
