//! Secret settings from SSM Parameter Store (against the local emulator) or from the
//! environment.

mod support;

use std::collections::HashMap;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use ripcord_aws::Secrets;
use ripcord_core::ports::ErrorKind;

async fn ssm() -> Client {
    Client::new(&support::config().await)
}

/// Secrets that read the environment from `vars` instead of the process environment.
fn secrets_with(ssm: Client, vars: &[(&str, &str)]) -> Secrets {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Secrets::with_env(ssm, move |name| vars.get(name).cloned())
}

#[tokio::test]
async fn a_secure_string_parameter_is_fetched_once_and_then_served_from_memory() {
    let ssm = ssm().await;
    let parameter = support::unique("/ripcord/test/webhook-secret");
    ssm.put_parameter()
        .name(&parameter)
        .value("s3cr3t-from-ssm")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("PutParameter");
    let env = [
        ("RIPCORD_WEBHOOK_SECRET_PARAM", parameter.as_str()),
        // The parameter wins over the plain variable.
        ("RIPCORD_WEBHOOK_SECRET", "plain-value"),
    ];
    let secrets = secrets_with(ssm.clone(), &env);

    let first = secrets.resolve("RIPCORD_WEBHOOK_SECRET").await.unwrap();
    assert_eq!(first.expose(), "s3cr3t-from-ssm");

    ssm.delete_parameter()
        .name(&parameter)
        .send()
        .await
        .expect("DeleteParameter");
    let second = secrets.clone().resolve("RIPCORD_WEBHOOK_SECRET").await;
    assert_eq!(
        second.expect("served from memory").expose(),
        "s3cr3t-from-ssm"
    );

    // A process that starts now finds the parameter gone: the read above really came
    // from memory. The error names the parameter and keeps the AWS error code.
    let error = secrets_with(ssm, &env)
        .resolve("RIPCORD_WEBHOOK_SECRET")
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(error.message.contains(&parameter), "{}", error.message);
    assert!(
        error.message.contains("ParameterNotFound"),
        "{}",
        error.message
    );
    assert!(error.message.contains("RIPCORD_WEBHOOK_SECRET_PARAM"));
    assert!(error.message.contains("(request id "), "{}", error.message);
    assert!(!error.message.contains("s3cr3t"));
}

#[tokio::test]
async fn the_plain_variable_is_the_fallback() {
    let secrets = secrets_with(
        ssm().await,
        &[
            ("RIPCORD_DISCORD_BOT_TOKEN", "local-token"),
            // An empty variable counts as unset.
            ("RIPCORD_DISCORD_BOT_TOKEN_PARAM", ""),
        ],
    );
    let token = secrets.resolve("RIPCORD_DISCORD_BOT_TOKEN").await.unwrap();
    assert_eq!(token.expose(), "local-token");
}

#[tokio::test]
async fn the_process_environment_is_read_by_default() {
    // The tests run with AWS_REGION set (and no AWS_REGION_PARAM), which is enough to
    // see that `Secrets::new` reads the real environment.
    let region = std::env::var("AWS_REGION").expect("AWS_REGION is set for the tests");
    let value = Secrets::new(ssm().await)
        .resolve("AWS_REGION")
        .await
        .unwrap();
    assert_eq!(value.expose(), region);
}

#[tokio::test]
async fn a_setting_given_neither_way_names_both_variables() {
    let error = secrets_with(ssm().await, &[])
        .resolve("RIPCORD_DISCORD_PUBLIC_KEY")
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(
        error
            .message
            .contains("set RIPCORD_DISCORD_PUBLIC_KEY_PARAM")
            && error.message.contains("set RIPCORD_DISCORD_PUBLIC_KEY to"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn secrets_are_redacted_when_printed() {
    let secrets = secrets_with(ssm().await, &[("RIPCORD_WEBHOOK_SECRET", "hunter2")]);
    let secret = secrets.resolve("RIPCORD_WEBHOOK_SECRET").await.unwrap();
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(secret.to_string(), "[redacted]");
    assert!(!format!("{secrets:?}").contains("hunter2"));
    assert_eq!(secret.expose(), "hunter2");
}
