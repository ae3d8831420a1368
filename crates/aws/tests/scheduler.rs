//! `SchedulerWakeUps` against the local emulator: one one-time schedule per deployment,
//! created, moved in place and deleted, read back with GetSchedule.

mod support;

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
use ripcord_aws::scheduler::schedule_name;
use ripcord_aws::{SchedulerWakeUps, WakeUpTarget};
use ripcord_core::domain::DeploymentId;
use ripcord_core::ports::WakeUps;
use ripcord_core::time::Timestamp;
use serde_json::Value;

const CONTROLLER: &str = "arn:aws:lambda:eu-west-1:123456789012:function:ripcord-controller";
const ROLE: &str = "arn:aws:iam::123456789012:role/ripcord-scheduler";

/// A client and a fresh schedule group of its own.
async fn wake_ups() -> (Client, SchedulerWakeUps) {
    let client = Client::new(&support::config().await);
    let group = support::unique("ripcord-wakeups");
    client
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("CreateScheduleGroup");
    let target = WakeUpTarget {
        group,
        controller_arn: CONTROLLER.to_string(),
        role_arn: ROLE.to_string(),
    };
    (client.clone(), SchedulerWakeUps::new(client, target))
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

#[tokio::test]
async fn a_wake_up_is_created_then_moved_in_place_then_deleted() {
    let (client, wake_ups) = wake_ups().await;
    let group = wake_ups.target().group.clone();
    let id = DeploymentId::new(support::unique("web")).unwrap();
    let name = schedule_name(&id);

    wake_ups
        .book(&id, at("2026-11-26T09:35:00.250Z"))
        .await
        .expect("created");
    let schedule = client
        .get_schedule()
        .name(&name)
        .group_name(&group)
        .send()
        .await
        .expect("GetSchedule");
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-11-26T09:35:01)"),
        "rounded up to the second, never early"
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = schedule.target().expect("a target");
    assert_eq!(target.arn(), CONTROLLER);
    assert_eq!(target.role_arn(), ROLE);
    let input: Value = serde_json::from_str(target.input().expect("an input")).unwrap();
    assert_eq!(input, serde_json::json!({"deployment_id": id.as_str()}));

    wake_ups
        .book(&id, at("2026-11-26T09:40:00Z"))
        .await
        .expect("moved");
    let moved = client
        .get_schedule()
        .name(&name)
        .group_name(&group)
        .send()
        .await
        .expect("GetSchedule");
    assert_eq!(moved.schedule_expression(), Some("at(2026-11-26T09:40:00)"));
    let listed = client
        .list_schedules()
        .group_name(&group)
        .send()
        .await
        .expect("ListSchedules");
    assert_eq!(listed.schedules().len(), 1, "one schedule per deployment");

    wake_ups.cancel(&id).await.expect("deleted");
    let gone = client
        .get_schedule()
        .name(&name)
        .group_name(&group)
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{gone:?}"
    );
    wake_ups
        .cancel(&id)
        .await
        .expect("cancelling nothing is not an error");
}

#[tokio::test]
async fn each_deployment_has_its_own_wake_up() {
    let (client, wake_ups) = wake_ups().await;
    let group = wake_ups.target().group.clone();
    let first = DeploymentId::new(support::unique("web")).unwrap();
    let second =
        DeploymentId::new(format!("{}/with:odd chars", support::unique("api")).replace(' ', "_"))
            .unwrap();
    wake_ups
        .book(&first, at("2026-11-26T10:00:00Z"))
        .await
        .unwrap();
    wake_ups
        .book(&second, at("2026-11-26T10:05:00Z"))
        .await
        .unwrap();
    wake_ups.cancel(&first).await.unwrap();

    let listed = client
        .list_schedules()
        .group_name(&group)
        .send()
        .await
        .expect("ListSchedules");
    let names: Vec<&str> = listed.schedules().iter().filter_map(|s| s.name()).collect();
    assert_eq!(names, vec![schedule_name(&second).as_str()]);
    let kept = client
        .get_schedule()
        .name(schedule_name(&second))
        .group_name(&group)
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(kept.target().unwrap().input().unwrap()).unwrap();
    assert_eq!(input["deployment_id"], second.as_str());
}

#[tokio::test]
async fn a_booking_that_fails_names_the_schedule_and_its_group() {
    let client = Client::new(&support::config().await);
    let group = support::unique("no-such-group");
    let wake_ups = SchedulerWakeUps::new(
        client,
        WakeUpTarget {
            group: group.clone(),
            controller_arn: CONTROLLER.to_string(),
            role_arn: ROLE.to_string(),
        },
    );
    let id = DeploymentId::new("web-1").unwrap();
    // AWS answers ResourceNotFoundException here; the emulator fails with a 500. Either
    // way the message says which schedule in which group could not be booked.
    let error = wake_ups
        .book(&id, at("2026-11-26T10:00:00Z"))
        .await
        .unwrap_err();
    assert!(error.message.contains(&group), "{}", error.message);
    assert!(
        error.message.contains("CreateSchedule ripcord-web-1"),
        "{}",
        error.message
    );
    // Cancelling in a group that does not exist has nothing to delete.
    wake_ups.cancel(&id).await.expect("nothing to cancel");
}
