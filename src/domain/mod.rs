//! The domain of DESIGN.md §3: what a valid copy request is, once parsed from the wire.
//!
//! - [`names`]: resource names (projects, locations, models, KMS keys) as parsing newtypes.
//! - [`operation`]: the long-running operation name, whose location picks an endpoint.
//! - [`copy_limits`]: CopyModel's documented limits (third-party images across projects, CMEK
//!   sources), checked before a copy is queued, and the default key per destination region.
//! - [`destination`]: where a copy goes: model naming, id derivation,
//!   and how to tell our earlier copy from someone else's model.
//! - [`request`]: the validated [`CopyRequest`], built from the wire type with the worker's
//!   defaults applied.

pub(crate) mod copy_limits;
pub(crate) mod destination;
pub(crate) mod names;
pub(crate) mod operation;
pub(crate) mod request;

use sha2::{Digest, Sha256};

pub use copy_limits::{DefaultKeys, SourceFacts, check_copy_limits, is_vertex_image};
pub use destination::{CopiedModel, Destination, Existing, ModelInfo, Target};
pub use names::{KmsKeyName, Location, ModelName, Project};
pub use operation::OperationName;
pub use request::{CopyRequest, Defaults, RequestId};

/// Lower-case hex of sha256(bytes): the basis of every derived id.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
