//! Response shaping per consumer: projection to an allow-list of fields and array caps.

use crate::pointer::{self, PointerError, Seg, Step};

/// Shaping rules, as written in config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeConfig {
    /// JSON pointers (with `*` for any key or array element) of the fields the consumer may see,
    /// e.g. `/items/*/id`. A listed field is kept whole (with everything under it); objects and
    /// arrays on the way to a listed field are kept with only the listed members. Empty: no
    /// projection.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Caps on array lengths at given pointers (`/items` → 20).
    #[serde(default)]
    pub max_items: Vec<ArrayCap>,
    /// A cap for every array that no entry of `max_items` names.
    #[serde(default)]
    pub max_items_everywhere: Option<usize>,
}

/// An array length cap at a pointer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayCap {
    /// The array's pointer (may use `*`).
    pub pointer: String,
    /// Elements kept, from the start.
    pub max: usize,
}

/// Why a shape was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// An allow pointer is malformed.
    #[error("shape.allow[{index}]: {source}")]
    Allow {
        /// Position in `allow`.
        index: usize,
        /// What is wrong.
        source: PointerError,
    },
    /// A cap pointer is malformed.
    #[error("shape.max_items[{index}].pointer: {source}")]
    Cap {
        /// Position in `max_items`.
        index: usize,
        /// What is wrong.
        source: PointerError,
    },
    /// More allow pointers than the walker tracks.
    #[error("shape.allow has {count} entries, at most {max} are supported")]
    TooManyAllow {
        /// Entries given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// A compiled shape, for [`crate::CompiledPolicy::apply_json`].
#[derive(Debug, Clone)]
pub struct Shape {
    allow: Vec<Vec<Seg>>,
    caps: Vec<(Vec<Seg>, usize)>,
    cap_all: Option<usize>,
}

/// Projection state of one node: which allow patterns still match its path (bit set), and whether
/// the node is inside an allowed subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProjState {
    live: u64,
    pub(crate) full: bool,
}

impl ProjState {
    pub(crate) const ALL: ProjState = ProjState { live: 0, full: true };
}

impl ShapeConfig {
    /// Validates the pointers.
    pub fn compile(&self) -> Result<Shape, ShapeError> {
        const MAX: usize = 64;
        if self.allow.len() > MAX {
            return Err(ShapeError::TooManyAllow { count: self.allow.len(), max: MAX });
        }
        let allow = self
            .allow
            .iter()
            .enumerate()
            .map(|(index, p)| pointer::parse(p).map_err(|source| ShapeError::Allow { index, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let caps = self
            .max_items
            .iter()
            .enumerate()
            .map(|(index, c)| {
                pointer::parse(&c.pointer).map(|p| (p, c.max)).map_err(|source| ShapeError::Cap { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Shape { allow, caps, cap_all: self.max_items_everywhere })
    }
}

impl Shape {
    /// The state of the root.
    pub(crate) fn root(&self) -> ProjState {
        if self.allow.is_empty() || self.allow.iter().any(Vec::is_empty) {
            return ProjState::ALL;
        }
        let live = if self.allow.len() >= 64 { u64::MAX } else { (1u64 << self.allow.len()) - 1 };
        ProjState { live, full: false }
    }

    /// The state of a child at `depth` (its parent's path length) reached by `step`, or `None` when
    /// the child is projected away.
    pub(crate) fn child(&self, parent: ProjState, depth: usize, step: &Step<'_>) -> Option<ProjState> {
        if parent.full {
            return Some(ProjState::ALL);
        }
        let mut live = 0u64;
        let mut full = false;
        let mut bits = parent.live;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(pat) = self.allow.get(i) else { continue };
            if pat.get(depth).is_some_and(|s| s.matches(step)) {
                if pat.len() == depth + 1 {
                    full = true;
                } else {
                    live |= 1u64 << i;
                }
            }
        }
        if full {
            Some(ProjState::ALL)
        } else if live != 0 {
            Some(ProjState { live, full: false })
        } else {
            None
        }
    }

    /// The cap for the array at `path`.
    pub(crate) fn cap(&self, path: &[Step<'_>]) -> Option<usize> {
        self.caps.iter().find(|(p, _)| pointer::matches_path(p, path)).map(|&(_, m)| m).or(self.cap_all)
    }
}
