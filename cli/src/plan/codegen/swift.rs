//! swift: not yet.
use super::ir::Model;
use super::Generated;

pub(super) fn generate(m: &Model) -> Generated {
    Generated {
        file_name: String::new(),
        source: format!("{:?}", m.plan),
    }
}
