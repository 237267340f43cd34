//! A typed builder for the engine's configuration in tests, instead of TOML written by hand with
//! `format!`: it starts from what every test needs (loopback bind on port 0, storage in `data`), sets
//! fields by dotted path with typed values, adds providers and GPU nodes as tables, and writes TOML
//! with the quoting done by the `toml` crate. Also `free_port`, the one helper that picks a port.
// Test-only code: a failed setup step should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use toml::{Table, Value};

/// An engine configuration under construction.
#[derive(Debug, Clone)]
pub struct Config {
    root: Table,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// `[server] bind = "127.0.0.1:0"` and `[storage] path = "data"`.
    pub fn new() -> Config {
        Config { root: Table::new() }
            .set("server.bind", "127.0.0.1:0")
            .set("storage.path", "data")
    }

    /// Sets `path` (dotted: `interview.mode`, `limits.max_live_sessions`) to `value`, creating the
    /// tables on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Config {
        let mut keys: Vec<&str> = path.split('.').collect();
        let last = keys.pop().expect("a key");
        let mut table = &mut self.root;
        for k in keys {
            table = table
                .entry(k.to_string())
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{path}: {k} is not a table"));
        }
        table.insert(last.to_string(), value.into());
        self
    }

    /// Adds `[providers.<name>]` with `fields` (a TOML table, e.g. from [`table`]).
    pub fn provider(self, name: &str, fields: Table) -> Config {
        self.set(&format!("providers.{name}"), fields)
    }

    /// Adds an OpenAI-format provider `name` at `{base}/v1` serving model `m`, priority 1, keys in
    /// `<NAME>_API_KEYS`, with `limits` (a TOML inline table such as `{ rpm = 1000 }`).
    pub fn openai_provider(self, name: &str, base: &str, limits: &str) -> Config {
        let keys_env = format!("{}_API_KEYS", name.to_ascii_uppercase());
        self.provider(
            name,
            table(&format!(
                "format = \"openai\"\nbase_url = \"{base}/v1\"\nmodel = \"m\"\npriority = 1\n\
                 keys_env = \"{keys_env}\"\nlimits = {limits}\n"
            )),
        )
    }

    /// The configuration as TOML.
    pub fn toml(&self) -> String {
        toml::to_string(&self.root).expect("a TOML table serializes")
    }

    /// The configuration as TOML followed by `extra` (TOML the builder has no method for).
    pub fn toml_with(&self, extra: &str) -> String {
        let mut out = self.toml();
        out.push('\n');
        out.push_str(extra);
        out
    }
}

/// A TOML table from its text (the fields of one section).
pub fn table(text: &str) -> Table {
    text.parse::<Table>()
        .unwrap_or_else(|e| panic!("bad TOML in a test: {e}\n{text}"))
}

/// A TCP port free on 127.0.0.1 now (bound, then released for the test to use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}
