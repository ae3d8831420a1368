//! `ripcord flags list | get | set | enable | disable | rollout | import | keys` with
//! `--local URL`: the same commands over local mode's flags API (`/api/flags`,
//! `/api/flag-keys`). The changes run in local mode, with the same checks and words
//! as on the table; reads are rendered here by the same functions, so both print
//! the same thing.

use std::path::Path;

use anyhow::Context as _;
use ripcord_api::flag_admin::KeySummary;
use ripcord_core::ports::{FlagChange, FlagRecord};
use serde_json::{Value, json};

use crate::flag_admin::{read_definition, read_json, render_get, render_keys, render_list};
use crate::local_client::{call, local_token, runtime};

/// Local mode's control port, and the token for changes.
pub struct LocalFlags<'a> {
    /// The control port's URL.
    pub base: &'a str,
    /// `--token`, if given.
    pub token: Option<&'a str>,
}

/// A flag's name as one path segment: anything but unreserved characters escaped.
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn flag_path(name: &str) -> String {
    format!("/api/flags/{}", segment(name))
}

impl LocalFlags<'_> {
    fn read(&self, path: &str) -> anyhow::Result<Value> {
        runtime()?.block_on(call(self.base, "GET", path, None, Vec::new()))
    }

    /// Sends a change with the token and returns the answer.
    fn write(&self, command: &str, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let token = local_token(self.token, command)?;
        runtime()?.block_on(call(
            self.base,
            method,
            path,
            Some(&token),
            body.to_string().into_bytes(),
        ))
    }

    /// Sends a change and returns the message it answered with.
    fn change(
        &self,
        command: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> anyhow::Result<String> {
        let answer = self.write(command, method, path, body)?;
        answer["message"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{} answered without a message", self.base))
    }

    /// `ripcord flags list --local URL`.
    pub fn list(&self, as_json: bool) -> anyhow::Result<String> {
        let answer = self.read("/api/flags")?;
        let records: Vec<FlagRecord> = serde_json::from_value(answer["flags"].clone())
            .context("local mode sent flags this build cannot read")?;
        render_list(&records, as_json)
    }

    /// `ripcord flags get FLAG --local URL`.
    pub fn get(&self, name: &str, as_json: bool) -> anyhow::Result<String> {
        let answer = self.read(&flag_path(name))?;
        let record: FlagRecord = serde_json::from_value(answer["flag"].clone())
            .context("local mode sent a flag this build cannot read")?;
        let history: Vec<FlagChange> = serde_json::from_value(answer["history"].clone())
            .context("local mode sent a history this build cannot read")?;
        render_get(&record, &history, as_json)
    }

    /// `ripcord flags set FLAG --from FILE --local URL`.
    pub fn set(&self, name: &str, file: &Path) -> anyhow::Result<String> {
        let document = read_definition(file, name)?;
        let body = json!({"definition": document, "source": file.display().to_string()});
        self.change("flags set", "PUT", &flag_path(name), body)
    }

    /// `ripcord flags enable|disable FLAG --local URL`.
    pub fn switch(&self, name: &str, enabled: bool) -> anyhow::Result<String> {
        let verb = if enabled { "enable" } else { "disable" };
        let path = format!("{}/{verb}", flag_path(name));
        self.change(&format!("flags {verb}"), "POST", &path, json!({}))
    }

    /// `ripcord flags rollout FLAG PERCENT --local URL`.
    pub fn rollout(&self, name: &str, percent: u32) -> anyhow::Result<String> {
        let path = format!("{}/rollout", flag_path(name));
        self.change(
            "flags rollout",
            "POST",
            &path,
            json!({ "percent": percent }),
        )
    }

    /// `ripcord flags import --unleash FILE --local URL`.
    pub fn import(&self, file: &Path) -> anyhow::Result<String> {
        let state = read_json(file)?;
        let body = json!({"state": state, "source": file.display().to_string()});
        self.change("flags import", "POST", "/api/flags", body)
    }

    /// `ripcord flags keys create NAME --local URL`: the key, shown this once.
    pub fn create_key(&self, name: &str) -> anyhow::Result<String> {
        let answer = self.write(
            "flags keys create",
            "POST",
            "/api/flag-keys",
            json!({ "name": name }),
        )?;
        answer["key"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{} answered without the key", self.base))
    }

    /// `ripcord flags keys revoke NAME --local URL`.
    pub fn revoke_key(&self, name: &str) -> anyhow::Result<String> {
        let path = format!("/api/flag-keys/{}", segment(name));
        self.change("flags keys revoke", "DELETE", &path, json!({}))
    }

    /// `ripcord flags keys list --local URL`.
    pub fn list_keys(&self, as_json: bool) -> anyhow::Result<String> {
        let answer = self.read("/api/flag-keys")?;
        let keys: Vec<KeySummary> = serde_json::from_value(answer["keys"].clone())
            .context("local mode sent keys this build cannot read")?;
        render_keys(&keys, as_json)
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_name_is_one_path_segment() {
        assert_eq!(segment("new-checkout_2.x~"), "new-checkout_2.x~");
        assert_eq!(segment("a/b c%"), "a%2Fb%20c%25");
        assert_eq!(segment("ü"), "%C3%BC");
    }
}
