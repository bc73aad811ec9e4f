//! The catalog's data: every integration and its actions.

use super::{Action, Field, Integration, Requirement};

const fn req(name: &'static str, description: &'static str) -> Field {
    Field { name, requirement: Requirement::Required, description }
}

const fn opt(name: &'static str, description: &'static str) -> Field {
    Field { name, requirement: Requirement::Optional, description }
}

const fn act(
    name: &'static str,
    description: &'static str,
    metadata: &'static [Field],
    data_source: Option<&'static str>,
) -> Action {
    Action { name, description, metadata, data_source }
}

const LIST_ID: Field = req("id", "List id");
const TAG_ID: Field = req("id", "Tag id");
const CHANNEL: Field = Field {
    name: "id",
    requirement: Requirement::RequiredInBotMode,
    description: "Channel id (bot token mode)",
};
/// The provider refuses a send without a sender; the connection's `from` is the default.
const SENDER: Field = Field {
    name: "from",
    requirement: Requirement::RequiredUnlessConnectionSets,
    description: "Sender address (default: the connection's `from`)",
};
const TEMPLATE_TEXT: Field = opt("template", "Message text with `{{payload.field}}` placeholders");

/// Every integration, sorted by `type`.
pub const INTEGRATIONS: &[Integration] = &[
    Integration {
        kind: "activecampaign",
        name: "ActiveCampaign",
        auth: "API URL and API key",
        actions: &[
            act("add_to_list", "Subscribe the contact to a list", &[LIST_ID], Some("lists")),
            act(
                "remove_from_list",
                "Unsubscribe the contact from a list",
                &[LIST_ID],
                Some("lists"),
            ),
            act("add_tag", "Add a tag to the contact", &[TAG_ID], Some("tags")),
            act("remove_tag", "Remove a tag from the contact", &[TAG_ID], Some("tags")),
            act("sync_contact", "Create or update the contact", &[], None),
        ],
    },
    Integration {
        kind: "aweber",
        name: "AWeber",
        auth: "OAuth 2 (client id, client secret, refresh token)",
        actions: &[
            act("add_to_list", "Subscribe the contact to a list", &[LIST_ID], Some("lists")),
            act(
                "remove_from_list",
                "Unsubscribe the contact from a list",
                &[LIST_ID],
                Some("lists"),
            ),
        ],
    },
    Integration {
        kind: "customer_io",
        name: "Customer.io",
        auth: "Track API site id and key (region us or eu)",
        actions: &[
            act(
                "track_event",
                "Identify the person, then track the event",
                &[opt(
                    "event_name_override",
                    "Event name to send instead of the meshes event type",
                )],
                None,
            ),
            act(
                "add_to_segment",
                "Add the person to a manual segment",
                &[req("id", "Manual segment id")],
                Some("segments"),
            ),
            act(
                "remove_from_segment",
                "Remove the person from a manual segment",
                &[req("id", "Manual segment id")],
                Some("segments"),
            ),
        ],
    },
    Integration {
        kind: "discord",
        name: "Discord",
        auth: "Channel webhook URL, or bot token",
        // No data source: the Discord adapter lists no channels (a bot's
        // channel id is taken as written).
        actions: &[act(
            "send_message",
            "Post a message",
            &[CHANNEL, opt("title", "Embed title"), TEMPLATE_TEXT],
            None,
        )],
    },
    Integration {
        kind: "hubspot",
        name: "HubSpot",
        auth: "Private app access token, or OAuth 2 (client id, client secret, refresh token)",
        actions: &[
            act("add_to_list", "Add the contact to a static list", &[LIST_ID], Some("lists")),
            act(
                "remove_from_list",
                "Remove the contact from a static list",
                &[LIST_ID],
                Some("lists"),
            ),
            act(
                "update_property",
                "Set a contact property",
                &[
                    req("id", "Property name"),
                    req("value", "Property value (an option for enumerations)"),
                ],
                Some("properties"),
            ),
        ],
    },
    Integration {
        kind: "intercom",
        name: "Intercom",
        auth: "Access token (region us, eu or au)",
        actions: &[
            act("add_tag", "Tag the contact", &[TAG_ID], Some("tags")),
            act("remove_tag", "Untag the contact", &[TAG_ID], Some("tags")),
        ],
    },
    Integration {
        kind: "log",
        name: "Log",
        auth: "None",
        actions: &[act("log", "Print the delivery to stdout", &[], None)],
    },
    Integration {
        kind: "mailchimp",
        name: "Mailchimp",
        auth: "API key (data center from its suffix)",
        actions: &[
            act(
                "add_to_list",
                "Subscribe the contact to an audience",
                &[req("id", "Audience id")],
                Some("lists"),
            ),
            act(
                "remove_from_list",
                "Archive the contact in an audience",
                &[req("id", "Audience id")],
                Some("lists"),
            ),
        ],
    },
    Integration {
        kind: "mailerlite",
        name: "MailerLite",
        auth: "API token",
        actions: &[
            act(
                "add_to_group",
                "Add the subscriber to a group",
                &[req("id", "Group id")],
                Some("groups"),
            ),
            act(
                "remove_from_group",
                "Remove the subscriber from a group",
                &[req("id", "Group id")],
                Some("groups"),
            ),
        ],
    },
    Integration {
        kind: "resend",
        name: "Resend",
        auth: "API key",
        actions: &[
            act(
                "add_to_segment",
                "Add the contact to a segment",
                &[req("id", "Segment id")],
                Some("segments"),
            ),
            act(
                "remove_from_segment",
                "Remove the contact from a segment",
                &[req("id", "Segment id")],
                Some("segments"),
            ),
            act(
                "send_email_template",
                "Send a published template to the contact",
                &[
                    req("id", "Template id or alias"),
                    // A published template carries its own subject and sender
                    // (Resend's template docs: "can be overridden when sending").
                    opt("subject", "Subject, overriding the template's"),
                    opt(
                        "from",
                        "Sender, overriding the template's (default: the connection's `from`)",
                    ),
                ],
                Some("templates"),
            ),
        ],
    },
    Integration {
        kind: "salesforce",
        name: "Salesforce",
        auth: "OAuth 2 (client id, client secret, refresh token; instance URL)",
        actions: &[
            act(
                "add_to_campaign",
                "Add the contact or lead to a campaign",
                &[req("id", "Campaign id")],
                Some("campaigns"),
            ),
            act(
                "remove_from_campaign",
                "Remove the contact or lead from a campaign",
                &[req("id", "Campaign id")],
                Some("campaigns"),
            ),
            act(
                "update_property",
                "Set a field on the contact or lead",
                &[req("id", "Field API name"), req("value", "Field value")],
                Some("properties"),
            ),
        ],
    },
    Integration {
        kind: "sendgrid",
        name: "SendGrid",
        auth: "API key",
        actions: &[
            act(
                "add_to_list",
                "Upsert the contact into a marketing list",
                &[LIST_ID],
                Some("lists"),
            ),
            act(
                "send_email_template",
                "Send a dynamic template to the contact",
                &[req("id", "Dynamic template id"), SENDER, opt("subject", "Subject")],
                Some("templates"),
            ),
            act(
                "send_email",
                "Send a plain email to the contact",
                &[
                    req("subject", "Subject"),
                    SENDER,
                    req("body", "Body text with `{{payload.field}}` placeholders"),
                ],
                None,
            ),
        ],
    },
    Integration {
        kind: "slack",
        name: "Slack",
        auth: "Incoming webhook URL, or bot token",
        actions: &[act(
            "send_message",
            "Post a message",
            &[CHANNEL, TEMPLATE_TEXT],
            Some("channels"),
        )],
    },
    Integration {
        kind: "webhook",
        name: "Webhook",
        auth: "None (optional basic, bearer or header auth; Standard Webhooks signing)",
        actions: &[act("send_webhook", "POST the event to the URL", &[], None)],
    },
    Integration {
        kind: "zoom",
        name: "Zoom",
        auth: "Server-to-server OAuth (account id, client id, client secret)",
        actions: &[
            act(
                "add_meeting_registrant",
                "Register the contact for a meeting",
                &[req("id", "Meeting id")],
                Some("meetings"),
            ),
            act(
                "add_webinar_registrant",
                "Register the contact for a webinar",
                &[req("id", "Webinar id")],
                Some("webinars"),
            ),
        ],
    },
];
