//! The `context` object sent with every event: library, app, device, os, locale,
//! timezone, screen, network and session.
//!
//! The platform layer fills a [`ContextInfo`] once; [`build`] turns it, with the parts
//! that change (device id, network, session), into the JSON object shared by every event
//! until one of those parts changes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::conditions::Network;
use crate::message::Properties;

/// The app, as the platform reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Display name.
    pub name: String,
    /// Version string (`1.4.2`).
    pub version: String,
    /// Build number.
    pub build: String,
    /// Bundle id or package name.
    pub namespace: String,
}

/// What the platform knows about the device and its settings. Empty fields are left out
/// of the context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextInfo {
    /// The app, if this is an app.
    pub app: Option<AppInfo>,
    /// Device manufacturer.
    pub device_manufacturer: Option<String>,
    /// Device model.
    pub device_model: Option<String>,
    /// Device type (`ios`, `android`, `desktop`, `server`…).
    pub device_type: Option<String>,
    /// Operating system name.
    pub os_name: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Locale (`en-US`).
    pub locale: Option<String>,
    /// IANA time zone (`Europe/Berlin`).
    pub timezone: Option<String>,
    /// Screen width in points.
    pub screen_width: Option<u32>,
    /// Screen height in points.
    pub screen_height: Option<u32>,
    /// Screen density (pixels per point).
    pub screen_density: Option<f64>,
    /// The browser's user agent, in browsers.
    pub user_agent: Option<String>,
}

fn put(map: &mut Properties, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

/// Builds the context object.
pub fn build(
    info: &ContextInfo,
    device_id: &str,
    network: Network,
    session_id: Option<i64>,
) -> Properties {
    let mut ctx = Properties::new();
    ctx.insert(
        "library".into(),
        json!({"name": crate::LIBRARY_NAME, "version": crate::VERSION}),
    );
    if let Some(app) = &info.app {
        ctx.insert(
            "app".into(),
            serde_json::to_value(app).unwrap_or(Value::Null),
        );
    }
    let mut device = Properties::new();
    device.insert("id".into(), device_id.into());
    put(
        &mut device,
        "manufacturer",
        info.device_manufacturer.clone().map(Value::from),
    );
    put(
        &mut device,
        "model",
        info.device_model.clone().map(Value::from),
    );
    put(
        &mut device,
        "type",
        info.device_type.clone().map(Value::from),
    );
    ctx.insert("device".into(), Value::Object(device));
    let mut os = Properties::new();
    put(&mut os, "name", info.os_name.clone().map(Value::from));
    put(&mut os, "version", info.os_version.clone().map(Value::from));
    if !os.is_empty() {
        ctx.insert("os".into(), Value::Object(os));
    }
    put(&mut ctx, "locale", info.locale.clone().map(Value::from));
    put(&mut ctx, "timezone", info.timezone.clone().map(Value::from));
    let mut screen = Properties::new();
    put(&mut screen, "width", info.screen_width.map(Value::from));
    put(&mut screen, "height", info.screen_height.map(Value::from));
    put(
        &mut screen,
        "density",
        info.screen_density
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
    );
    if !screen.is_empty() {
        ctx.insert("screen".into(), Value::Object(screen));
    }
    put(
        &mut ctx,
        "userAgent",
        info.user_agent.clone().map(Value::from),
    );
    ctx.insert(
        "network".into(),
        json!({
            "wifi": network == Network::Wifi,
            "cellular": network == Network::Cellular,
            "ethernet": network == Network::Ethernet,
            "offline": network == Network::Offline,
        }),
    );
    put(&mut ctx, "sessionId", session_id.map(Value::from));
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known fields appear under their Segment names; unknown ones are left out.
    #[test]
    fn context_shape() {
        let info = ContextInfo {
            app: Some(AppInfo {
                name: "Player".into(),
                version: "1.0".into(),
                build: "7".into(),
                namespace: "com.example".into(),
            }),
            os_name: Some("android".into()),
            locale: Some("de-DE".into()),
            screen_width: Some(390),
            ..ContextInfo::default()
        };
        let ctx = Value::Object(build(&info, "dev-1", Network::Cellular, Some(42)));
        assert_eq!(ctx["library"]["name"], "trailhound");
        assert_eq!(ctx["app"]["namespace"], "com.example");
        assert_eq!(ctx["device"]["id"], "dev-1");
        assert_eq!(ctx["os"]["name"], "android");
        assert_eq!(ctx["locale"], "de-DE");
        assert_eq!(ctx["screen"]["width"], 390);
        assert_eq!(ctx["network"]["cellular"], true);
        assert_eq!(ctx["network"]["wifi"], false);
        assert_eq!(ctx["sessionId"], 42);
        assert!(ctx.get("timezone").is_none());
    }
}
