//! The backend: [`PassthroughFs`], the FUSE operations over a [`Host`].

use std::io;

use fuse_server::{Capabilities, FileSystem};

use crate::config::Config;
use crate::host::Host;

/// A [`FileSystem`] serving the host directory [`Config::root`] through a [`Host`].
#[derive(Debug)]
pub struct PassthroughFs<H: Host> {
    host: H,
    config: Config,
}

impl<H: Host> PassthroughFs<H> {
    /// A backend serving `config.root` through `host`.
    pub fn new(host: H, config: Config) -> io::Result<PassthroughFs<H>> {
        Ok(PassthroughFs { host, config })
    }
}

impl<H: Host> FileSystem for PassthroughFs<H> {
    fn capabilities(&self) -> Capabilities {
        let _ = (&self.host, &self.config);
        Capabilities::new()
    }
}
