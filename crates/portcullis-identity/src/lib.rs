//! Identity: consumers, credentials, authentication and authorization (being built; see
//! issue 3). So far: API keys as issued and stored.
//!
//! ```
//! use portcullis_identity::apikey::{self, KeyEnv, KeyHasher};
//! # let dir = std::env::temp_dir();
//! # std::fs::write(dir.join("pc-doc-key-secret"), "a server secret of 32 bytes or more").unwrap();
//! // The server secret comes from a reference such as ${env:NAME} or ${file:/path}.
//! let secret = portcullis_config::resolve_secret("${file:pc-doc-key-secret}", &dir).unwrap();
//! let hasher = KeyHasher::new(&secret).unwrap();
//! let issued = apikey::generate(KeyEnv::Live).unwrap();
//! let stored = hasher.hash(issued.expose()); // only this is kept
//! assert!(hasher.verify(issued.expose(), &stored));
//! assert!(apikey::parse(issued.expose()).is_ok()); // recognisable by its prefix and checksum
//! ```

pub mod admin;
pub mod apikey;
pub mod basic;
pub mod bruteforce;
pub mod cert;
pub mod hmac_sig;
pub mod http;
pub mod introspect;
pub mod jwt;
pub mod policies;
pub mod service;
pub mod stage;

pub use service::{IdentityService, ServiceError};
pub use stage::{Authenticated, AuthnStage, AuthzStage, RoutePolicies, route_policies};
