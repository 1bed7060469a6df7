//! The checks of a connection's settings and credential fields against its catalog entry.

use super::fields::{check_host, check_range, check_value};
use super::{
    AppEntry, FieldSpec, FieldType, BORROW_CONCURRENCY_FROM, CONCURRENCY_LEVEL,
    HEALTH_CHECK_INTERVAL, MAX_HEALTH_CHECK_INTERVAL,
};
use crate::model::{AuthMode, DEFAULT_CONCURRENCY_LEVEL, MAX_CONCURRENCY_LEVEL};
use crate::secret::SecretFields;
use crate::CoreError;
use serde_json::{Map, Value};

impl AppEntry {
    /// Checks that every setting the entry's URL templates name has a value that keeps the
    /// request on the application's host.
    fn check_template_settings(&self, settings: &Map<String, Value>) -> Result<(), CoreError> {
        for (_, t) in self.templates() {
            for (name, pos) in crate::template::placeholders(t) {
                let Some(spec) = self.setting(&name) else {
                    continue;
                };
                let field = format!("settings.{name}");
                if spec.kind == FieldType::Enum && settings.contains_key(&name) {
                    continue;
                }
                match settings.get(&name) {
                    Some(Value::String(v)) => crate::template::check_value(&field, &name, v, pos)?,
                    Some(Value::Number(n)) => {
                        crate::template::check_value(&field, &name, &n.to_string(), pos)?
                    }
                    _ => {
                        return Err(CoreError::invalid_with_hint(
                            field,
                            format!(
                                "the setting `{name}` is missing: {}'s URLs need it",
                                self.name
                            ),
                            format!("give settings.{name}"),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// The setting of this entry named `name`, if it takes one.
    pub fn setting(&self, name: &str) -> Option<&FieldSpec> {
        self.settings.iter().find(|f| f.name == name)
    }

    /// Checks a connection's settings for `mode` and returns them normalized: defaults filled
    /// in, `concurrency_level` present. Unknown settings are refused, so a typo is not lost.
    pub fn validate_settings(
        &self,
        mode: AuthMode,
        input: &Map<String, Value>,
    ) -> Result<Map<String, Value>, CoreError> {
        let mut out = Map::new();
        for (k, v) in input {
            if k == CONCURRENCY_LEVEL
                || k == BORROW_CONCURRENCY_FROM
                || k == HEALTH_CHECK_INTERVAL
                || v.is_null()
            {
                continue;
            }
            match self.setting(k) {
                Some(spec) if spec.applies_to(mode) => {
                    out.insert(k.clone(), check_value(&format!("settings.{k}"), spec, v)?);
                }
                Some(_) => {
                    return Err(CoreError::invalid(
                        format!("settings.{k}"),
                        format!("`{k}` does not apply to auth mode `{mode}`"),
                    ))
                }
                None => {
                    return Err(CoreError::invalid_with_hint(
                        format!("settings.{k}"),
                        format!("`{}` has no setting `{k}`", self.id),
                        format!("its settings are: {}", self.setting_names(mode).join(", ")),
                    ))
                }
            }
        }
        for spec in self.settings.iter().filter(|s| s.applies_to(mode)) {
            if out.contains_key(&spec.name) {
                continue;
            }
            if let Some(d) = &spec.default {
                out.insert(spec.name.clone(), d.clone());
            } else if spec.is_required(mode) {
                return Err(CoreError::invalid(
                    format!("settings.{}", spec.name),
                    format!("`{}` ({}) is required", spec.name, spec.label),
                ));
            }
        }
        if mode.is_direct() {
            // Latchkey never proxies a database or an SFTP server: no concurrency level, none shared.
            if matches!(input.get(BORROW_CONCURRENCY_FROM), Some(v) if !v.is_null()) {
                return Err(CoreError::invalid_with_hint(
                    "settings.borrow_concurrency_from",
                    format!("a {} connection cannot borrow concurrency", if mode == AuthMode::Sftp { "SFTP" } else { "database" }),
                    "Latchkey does not proxy databases or SFTP servers, so their connections have no concurrency to share",
                ));
            }
            return Ok(out);
        }
        let level = match input.get(CONCURRENCY_LEVEL) {
            None | Some(Value::Null) => DEFAULT_CONCURRENCY_LEVEL,
            Some(v) => match v.as_i64() {
                Some(n) if (1..=MAX_CONCURRENCY_LEVEL).contains(&n) => n,
                _ => {
                    return Err(CoreError::invalid_with_hint(
                        "settings.concurrency_level",
                        "the concurrency level must be a whole number from 1 to 25",
                        "it is the most requests Latchkey sends to the application at once",
                    ))
                }
            },
        };
        self.check_template_settings(&out)?;
        out.insert(CONCURRENCY_LEVEL.into(), Value::from(level));
        match input.get(HEALTH_CHECK_INTERVAL) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n == 0 || (5..=MAX_HEALTH_CHECK_INTERVAL).contains(&n) => {
                    out.insert(HEALTH_CHECK_INTERVAL.into(), Value::from(n));
                }
                _ => {
                    return Err(CoreError::invalid_with_hint(
                        "settings.health_check_interval_seconds",
                        "the health check interval must be 0 (no checks) or a whole number of seconds from 5 to 604800",
                        "leave it out to use LATCHKEY_HEALTH_INTERVAL",
                    ))
                }
            },
        }
        match input.get(BORROW_CONCURRENCY_FROM) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => {
                out.insert(BORROW_CONCURRENCY_FROM.into(), Value::String(s.clone()));
            }
            Some(_) => {
                return Err(CoreError::invalid(
                    "settings.borrow_concurrency_from",
                    "borrow_concurrency_from must be the id or name of another connection",
                ))
            }
        }
        Ok(out)
    }

    fn setting_names(&self, mode: AuthMode) -> Vec<String> {
        self.settings
            .iter()
            .filter(|s| s.applies_to(mode))
            .map(|s| s.name.clone())
            .chain([
                CONCURRENCY_LEVEL.to_string(),
                BORROW_CONCURRENCY_FROM.to_string(),
                HEALTH_CHECK_INTERVAL.to_string(),
            ])
            .collect()
    }

    /// The credential fields of an auth mode.
    pub fn credential_fields(&self, mode: AuthMode) -> impl Iterator<Item = &FieldSpec> {
        self.credentials.iter().filter(move |f| f.applies_to(mode))
    }

    /// Checks credential fields for `mode`: no unknown fields, values of the right type, and
    /// (unless `partial`, for an edit that merges onto stored fields) every required one present.
    pub fn validate_credentials(
        &self,
        mode: AuthMode,
        creds: &SecretFields,
        partial: bool,
    ) -> Result<(), CoreError> {
        for name in creds.names() {
            let Some(spec) = self.credential_fields(mode).find(|f| f.name == name) else {
                let known: Vec<&str> = self
                    .credential_fields(mode)
                    .map(|f| f.name.as_str())
                    .collect();
                return Err(CoreError::invalid_with_hint(
                    format!("credentials.{name}"),
                    format!(
                        "auth mode `{mode}` of `{}` has no credential field `{name}`",
                        self.id
                    ),
                    if known.is_empty() {
                        "this auth mode takes no credential fields".to_string()
                    } else {
                        format!("its credential fields are: {}", known.join(", "))
                    },
                ));
            };
            let value = creds.expose(name).unwrap_or_default();
            let field = format!("credentials.{name}");
            match spec.kind {
                FieldType::Integer => {
                    let n: i64 = value.trim().parse().map_err(|_| {
                        CoreError::invalid(&field, format!("`{name}` must be a whole number"))
                    })?;
                    check_range(&field, spec, n)?;
                }
                FieldType::Host => check_host(&field, value)?,
                FieldType::SecretText
                    if spec.name == "private_key" && !value.contains("-----BEGIN") =>
                {
                    return Err(CoreError::invalid(
                        &field,
                        "the private key must be in PEM form (-----BEGIN … KEY-----)",
                    ));
                }
                _ => {}
            }
            if value.is_empty() && spec.is_required(mode) {
                return Err(CoreError::invalid(
                    &field,
                    format!("`{name}` cannot be empty"),
                ));
            }
        }
        if !partial {
            for spec in self.credential_fields(mode).filter(|f| f.is_required(mode)) {
                if creds.get(&spec.name).is_none() {
                    return Err(CoreError::invalid(
                        format!("credentials.{}", spec.name),
                        format!("`{}` ({}) is required", spec.name, spec.label),
                    ));
                }
            }
        }
        Ok(())
    }
}
