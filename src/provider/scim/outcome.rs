//! What a service's answer to one SCIM request means (RFC 7644 §3.12), and
//! which attributes it silently ignored.
//!
//! The same reading serves single requests and the per-operation answers of
//! a `/Bulk` response: the status and the body decide, whatever the
//! transport was.

use serde_json::Value;

use super::mapping::{managed_view, observed_attributes, Manage, Managed};
use super::resource::{Error, User};
use super::wire;
use crate::attributes::Attributes;

/// The request an answer is to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `POST /Users`.
    CreateUser,
    /// `PATCH /Users/{id}` (an update, a rename, a deactivation or a
    /// reactivation).
    PatchUser,
    /// `DELETE /Users/{id}`.
    DeleteUser,
    /// `PATCH /Groups/{id}`.
    PatchGroup,
}

/// What an answer means.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The user was created (201, or 200 from lenient services). `id` is
    /// `None` only when the body carries none; the user is then found with
    /// a lookup.
    Created {
        /// The new user's id.
        id: Option<String>,
        /// Its version, for a later `If-Match` in this run.
        version: Option<String>,
        /// The returned resource, to detect ignored attributes (boxed: it
        /// dwarfs the other answers).
        resource: Option<Box<User>>,
    },
    /// Done: a PATCH answered 200 with the resource or 204 without, or a
    /// DELETE.
    Done {
        /// The returned body, when there was one.
        body: Option<Value>,
    },
    /// `409` to a create (`uniqueness`, or no `scimType` at all): the user
    /// exists; look it up by `match_on`, adopt it and PATCH the differences.
    Exists {
        /// The service's words.
        detail: Option<String>,
    },
    /// `404` to a user PATCH or DELETE: the user is gone (drift). A success
    /// for a removal.
    Gone,
    /// `412`: the version changed since it was read; re-read once and retry.
    PreconditionFailed,
    /// Refused; nothing changed.
    Failed {
        /// The HTTP status.
        status: u16,
        /// The SCIM error keyword (`invalidValue`, `invalidPath`,
        /// `noTarget`, `mutability`, `uniqueness`, …).
        scim_type: Option<String>,
        /// A one-line reason, in the service's words where it gave any.
        reason: String,
    },
    /// It may or may not have happened (a server error, throttling inside a
    /// `/Bulk` response, or a status that cannot be read).
    Uncertain {
        /// What went wrong.
        reason: String,
    },
}

impl Answer {
    /// Whether the request achieved what it asked for. A gone user counts for
    /// a DELETE, whose aim it was, and for nothing else.
    #[must_use]
    pub fn succeeded(&self, request: Request) -> bool {
        match self {
            Answer::Created { .. } | Answer::Done { .. } => true,
            Answer::Gone => request == Request::DeleteUser,
            _ => false,
        }
    }
}

/// The one-line reason of an error answer: `HTTP 400 invalidValue: detail`.
fn reason(status: u16, error: &Error) -> String {
    let mut reason = format!("HTTP {status}");
    if let Some(scim_type) = &error.scim_type {
        reason.push(' ');
        reason.push_str(scim_type);
    }
    if let Some(detail) = error.detail.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        reason.push_str(": ");
        reason.push_str(detail);
    }
    reason
}

/// Reads the answer to `request`: its status (`None` when it could not be
/// read, as a `/Bulk` entry may have it) and its JSON body, if any.
#[must_use]
pub fn classify(request: Request, status: Option<u16>, body: Option<&Value>) -> Answer {
    let Some(status) = status else {
        return Answer::Uncertain { reason: "the answer carries no readable status".to_owned() };
    };
    // A JSON `null` or an empty object is the same as no body (204-style).
    let body = body.filter(|b| !b.is_null() && b.as_object().is_none_or(|o| !o.is_empty()));
    let error = || Error::from_body(body);
    match (request, status) {
        (Request::CreateUser, 200 | 201) => {
            let resource: Option<User> = body.and_then(|b| wire::from_value(b.clone()).ok());
            Answer::Created {
                id: resource.as_ref().and_then(|u| u.id.clone()),
                version: resource.as_ref().and_then(|u| u.version().map(str::to_owned)),
                resource: resource.map(Box::new),
            }
        }
        (_, 200..=299) => Answer::Done { body: body.cloned() },
        (Request::CreateUser, 409) => {
            let error = error();
            if error.scim_type.is_none() || error.is("uniqueness") {
                Answer::Exists { detail: error.detail }
            } else {
                Answer::Failed { status, reason: reason(status, &error), scim_type: error.scim_type }
            }
        }
        (Request::PatchUser | Request::DeleteUser, 404) => Answer::Gone,
        (_, 412) => Answer::PreconditionFailed,
        (_, 429 | 500..) => Answer::Uncertain { reason: reason(status, &error()) },
        _ => {
            let error = error();
            Answer::Failed { status, reason: reason(status, &error), scim_type: error.scim_type }
        }
    }
}

/// The attribute groups a service silently dropped: sent with a value,
/// returned with none (many services ignore `roles`, say). `sent` are the
/// attributes the request carried (a create's desired attributes, or a
/// PATCH's full desired state); `returned` the resource the service
/// answered with. Group memberships are never on a create or a user PATCH,
/// so they are not judged here. A value that was partly kept is a change to
/// plan, not an ignored attribute.
#[must_use]
pub fn ignored_attributes(sent: &Attributes, returned: &User, manage: &Manage) -> Vec<Managed> {
    let sent = managed_view(sent, manage);
    let back = observed_attributes(returned, manage);
    let named = |a: &Attributes| a.name.is_some() || a.first_name.is_some() || a.last_name.is_some();
    let mut ignored = Vec::new();
    let mut check = |group, was_sent: bool, came_back: bool| {
        if manage.contains(group) && was_sent && !came_back {
            ignored.push(group);
        }
    };
    check(Managed::Name, named(&sent), named(&back));
    check(Managed::Phone, sent.phone.is_some(), back.phone.is_some());
    check(Managed::Roles, !sent.roles.is_empty(), !back.roles.is_empty());
    check(Managed::Entitlements, !sent.plans.is_empty(), !back.plans.is_empty());
    check(Managed::Manager, sent.manager_id.is_some(), back.manager_id.is_some());
    ignored
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::scim::mapping::{new_user, ScimSettings};

    #[test]
    fn a_created_user_gives_its_id_and_version() {
        let body = json!({"id": "u1", "userName": "a@x.io", "meta": {"version": "W/\"1\""}});
        let Answer::Created { id, version, resource } = classify(Request::CreateUser, Some(201), Some(&body)) else {
            panic!("not created");
        };
        assert_eq!(id.as_deref(), Some("u1"));
        assert_eq!(version.as_deref(), Some("W/\"1\""));
        assert_eq!(resource.unwrap().user_name, "a@x.io");
        assert_eq!(
            classify(Request::CreateUser, Some(200), None),
            Answer::Created { id: None, version: None, resource: None }
        );
        assert!(classify(Request::CreateUser, Some(201), None).succeeded(Request::CreateUser));
    }

    #[test]
    fn patch_success_is_200_with_a_body_or_204_without() {
        let body = json!({"id": "u1", "userName": "a"});
        assert_eq!(classify(Request::PatchUser, Some(200), Some(&body)), Answer::Done { body: Some(body.clone()) });
        assert_eq!(classify(Request::PatchUser, Some(204), None), Answer::Done { body: None });
        assert_eq!(classify(Request::PatchGroup, Some(204), Some(&json!(null))), Answer::Done { body: None });
        assert_eq!(classify(Request::PatchGroup, Some(200), Some(&json!({}))), Answer::Done { body: None });
        assert_eq!(classify(Request::DeleteUser, Some(204), None), Answer::Done { body: None });
    }

    #[test]
    fn a_409_to_a_create_means_adopt_unless_it_says_otherwise() {
        let uniqueness = json!({"schemas": [super::super::ERROR_SCHEMA], "status": "409", "scimType": "uniqueness",
                                "detail": "User already exists"});
        assert_eq!(
            classify(Request::CreateUser, Some(409), Some(&uniqueness)),
            Answer::Exists { detail: Some("User already exists".into()) }
        );
        assert_eq!(classify(Request::CreateUser, Some(409), None), Answer::Exists { detail: None });
        let other = json!({"scimType": "mutability", "detail": "no"});
        assert_eq!(
            classify(Request::CreateUser, Some(409), Some(&other)),
            Answer::Failed {
                status: 409,
                scim_type: Some("mutability".into()),
                reason: "HTTP 409 mutability: no".into()
            }
        );
        // A conflict on a rename is a refusal, not an adoption.
        assert!(matches!(
            classify(Request::PatchUser, Some(409), Some(&uniqueness)),
            Answer::Failed { status: 409, .. }
        ));
    }

    #[test]
    fn a_404_is_gone_for_users_and_a_failure_for_groups() {
        assert_eq!(classify(Request::PatchUser, Some(404), None), Answer::Gone);
        assert_eq!(classify(Request::DeleteUser, Some(404), None), Answer::Gone);
        assert!(Answer::Gone.succeeded(Request::DeleteUser));
        assert!(!Answer::Gone.succeeded(Request::PatchUser));
        let group = classify(Request::PatchGroup, Some(404), Some(&json!({"detail": "Group g not found"})));
        assert_eq!(
            group,
            Answer::Failed { status: 404, scim_type: None, reason: "HTTP 404: Group g not found".into() }
        );
    }

    #[test]
    fn a_412_asks_for_a_re_read_and_400s_carry_the_detail() {
        assert_eq!(classify(Request::PatchUser, Some(412), None), Answer::PreconditionFailed);
        let body = json!({"scimType": "invalidPath", "detail": " path `roles` is not supported ", "status": 400});
        assert_eq!(
            classify(Request::PatchUser, Some(400), Some(&body)),
            Answer::Failed {
                status: 400,
                scim_type: Some("invalidPath".into()),
                reason: "HTTP 400 invalidPath: path `roles` is not supported".into()
            }
        );
        let no_target = json!({"scimType": "noTarget"});
        assert!(matches!(
            classify(Request::PatchGroup, Some(400), Some(&no_target)),
            Answer::Failed { scim_type: Some(t), .. } if t == "noTarget"
        ));
        assert_eq!(
            classify(Request::DeleteUser, Some(403), Some(&json!("plain text"))),
            Answer::Failed { status: 403, scim_type: None, reason: "HTTP 403".into() }
        );
    }

    #[test]
    fn server_errors_and_unreadable_statuses_are_uncertain() {
        assert_eq!(
            classify(Request::CreateUser, Some(503), Some(&json!({"detail": "busy"}))),
            Answer::Uncertain { reason: "HTTP 503: busy".into() }
        );
        assert!(matches!(classify(Request::PatchGroup, Some(429), None), Answer::Uncertain { .. }));
        assert!(matches!(classify(Request::PatchUser, None, None), Answer::Uncertain { .. }));
    }

    fn desired() -> Attributes {
        Attributes {
            email: "a@x.io".into(),
            name: Some("Ada".into()),
            phone: Some("1".into()),
            roles: vec!["admin".into()],
            plans: vec!["pro".into()],
            groups: vec!["g1".into()],
            manager_id: Some("m".into()),
            ..Attributes::default()
        }
    }

    #[test]
    fn dropped_attributes_are_detected_from_the_returned_resource() {
        let manage = Manage::all();
        let sent = new_user(&desired(), &ScimSettings::default());
        // Kept everything (groups are never judged on a user).
        assert!(ignored_attributes(&desired(), &sent, &manage).is_empty());
        let mut returned = sent.clone();
        returned.roles.clear();
        returned.enterprise = None;
        assert_eq!(ignored_attributes(&desired(), &returned, &manage), vec![Managed::Roles, Managed::Manager]);
        // Not managed: not judged.
        assert!(ignored_attributes(&desired(), &returned, &Manage::only(&[Managed::Name])).is_empty());
        // Partly kept: a change to plan, not an ignored attribute.
        let mut two = desired();
        two.roles.push("dev".into());
        assert!(ignored_attributes(&two, &sent, &manage).is_empty());
        // A bare returned resource drops everything that was sent.
        let bare = User { user_name: "a@x.io".into(), ..User::default() };
        assert_eq!(
            ignored_attributes(&desired(), &bare, &manage),
            vec![Managed::Name, Managed::Phone, Managed::Roles, Managed::Entitlements, Managed::Manager]
        );
    }
}
