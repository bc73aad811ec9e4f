//! Building a [`KeyRing`]: keys compared as serving compares them, and a
//! config whose keys would shadow one another refused rather than served.

use super::{KeyRing, MachineCredential};
use crate::config::model::key_text;

/// Why a config's credentials cannot be served together. Names workspaces,
/// never a key: keys may come from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// A publishable key that is empty once surrounding whitespace is dropped.
    #[error("workspace {workspace}: the publishable key is blank")]
    BlankPublishable {
        /// The workspace id.
        workspace: String,
    },
    /// A machine access key that is empty once surrounding whitespace is dropped.
    #[error("workspace {workspace}: a machine key has a blank access key")]
    BlankAccessKey {
        /// The workspace id.
        workspace: String,
    },
    /// Two workspaces with one publishable key: events would all go to the first.
    #[error(
        "workspaces {first} and {second} have the same publishable key; expected one per workspace"
    )]
    DuplicatePublishable {
        /// The workspace that has it first.
        first: String,
        /// The workspace that has it again.
        second: String,
    },
    /// One access key twice: its tokens would authenticate as the first
    /// holder only, another workspace's when they differ.
    #[error(
        "workspaces {first} and {second} have machine keys with the same access key; expected each access key once"
    )]
    DuplicateAccessKey {
        /// The workspace that has it first.
        first: String,
        /// The workspace that has it again (may be the same one).
        second: String,
    },
}

impl KeyRing {
    /// Builds the ring from `(publishable key, workspace id)` pairs and
    /// machine credentials, keys without surrounding whitespace. A blank or
    /// repeated key is refused: keeping the first would silently disable the
    /// other, or let one workspace's token read another's data.
    pub fn new(
        publishable: Vec<(String, String)>,
        machine: Vec<MachineCredential>,
    ) -> Result<Self, KeyRingError> {
        let mut ring = KeyRing { publishable: Vec::new(), machine: Vec::new() };
        for (key, workspace) in publishable {
            let key = key_text(&key).to_string();
            if key.is_empty() {
                return Err(KeyRingError::BlankPublishable { workspace });
            }
            if let Some((_, first)) = ring.publishable.iter().find(|(k, _)| *k == key) {
                let first = first.clone();
                return Err(KeyRingError::DuplicatePublishable { first, second: workspace });
            }
            ring.publishable.push((key, workspace));
        }
        for mut cred in machine {
            cred.access_key = key_text(&cred.access_key).to_string();
            if cred.access_key.is_empty() {
                return Err(KeyRingError::BlankAccessKey { workspace: cred.workspace });
            }
            if let Some(first) = ring.machine.iter().find(|m| m.access_key == cred.access_key) {
                let first = first.workspace.clone();
                return Err(KeyRingError::DuplicateAccessKey { first, second: cred.workspace });
            }
            ring.machine.push(cred);
        }
        Ok(ring)
    }
}
