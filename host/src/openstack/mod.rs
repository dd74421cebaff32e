//! OpenStack for the central agent: the service credentials, a Keystone session the
//! whole agent shares (one token, renewed before it expires), and its catalog. Plugins
//! granted `openstack` read the catalog (`caps::openstack`) and their requests to its
//! endpoints carry the token (`caps::http`); neither the password nor the token is
//! ever handed to a plugin.

mod catalog;
mod credentials;
mod keystone;

pub use catalog::{url_origin, Catalog, Endpoint};
pub use credentials::Credentials;
pub use keystone::{Keystone, KeystoneError, Token};
