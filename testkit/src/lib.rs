//! Test harness for copy-worker: the official Pub/Sub emulator, a Vertex AI fake, and helpers.
//!
//! # Layout
//! - [`emulator`]: starts and kills the official Pub/Sub emulator (a JVM child process).
//! - [`pubsub`]: creates the topology of DESIGN.md §2 on the emulator, publishes, and collects
//!   messages of pull subscriptions ([`pubsub::Inbox`]), all with the official client.
//! - [`vertex`]: an HTTP fake of the Vertex AI ModelService REST surface with scriptable
//!   durations and faults, checked against the official `google-cloud-aiplatform-v1` client.
//! - [`oidc`]: a local OIDC issuer: a JWKS over HTTP, RS256 ID tokens and hostile tokens.

pub mod emulator;
pub mod oidc;
pub mod pubsub;
pub mod vertex;

pub use emulator::Emulator;
pub use oidc::{JwksMode, OidcIssuer};
pub use pubsub::{Inbox, Received, Topology, TopologyOptions};
pub use vertex::{Call, CopyScript, Fault, VertexFake};
