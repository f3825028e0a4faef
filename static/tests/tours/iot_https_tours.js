/** @odoo-module */

import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

const openIotApp = () => [
    stepUtils.showAppsMenuItem(),
    {
        content: "Open the IoT app",
        trigger: '.o_app[data-menu-xmlid="iot_https.iot_https_menu_root"]',
    },
];

registry.category("web_tour.tours").add("iot_https_box_form_debug", {
    test: true,
    url: "/web?debug=1",
    steps: () => [
        ...openIotApp(),
        {
            content: "The box list shows the shop's boxes",
            trigger: '.o_list_view .o_data_row td:contains("Shop counter")',
        },
        {
            content: "The certificate banner shows the subject and the validity period",
            trigger: '.o_form_view .alert-success:contains("HTTPS certificate"):contains("valid from")',
            isCheck: true,
        },
        {
            content: "Developer mode shows Download logs",
            trigger: '.o_form_view .o_form_statusbar button[name="action_download_logs"]',
            isCheck: true,
        },
        {
            content: "Back to the list",
            trigger: '.o_breadcrumb a:contains("IoT Boxes")',
        },
        {
            content: "Open the back-office box",
            trigger: '.o_list_view .o_data_row td:contains("Back office")',
        },
        {
            content: "Download its logs: the server fetches them from the box",
            trigger: '.o_form_view button[name="action_download_logs"]',
        },
        {
            content: "The form is still there after the download",
            trigger: '.o_form_view .o_field_widget[name="name"]:contains("Back office"), .o_form_view .o_field_widget[name="name"] input',
            isCheck: true,
        },
    ],
});

registry.category("web_tour.tours").add("iot_https_box_form_no_debug", {
    test: true,
    url: "/web",
    steps: () => [
        ...openIotApp(),
        {
            content: "Open the shop box",
            trigger: '.o_list_view .o_data_row td:contains("Shop counter")',
        },
        {
            content: "Outside developer mode there is no Download logs",
            trigger: '.o_form_view .alert-success:contains("HTTPS certificate")',
            run() {
                if (document.querySelector('.o_form_view button[name="action_download_logs"]')) {
                    throw new Error("Download logs is visible outside developer mode");
                }
            },
        },
    ],
});

registry.category("web_tour.tours").add("iot_https_database_refused", {
    test: true,
    url: "/web",
    steps: () => [
        ...openIotApp(),
        {
            content: "Open the subscriptions menu",
            trigger: '.o_main_navbar button:contains("Subscriptions"), .o_main_navbar a:contains("Subscriptions")',
        },
        {
            content: "Open Databases",
            trigger: '.dropdown-item:contains("Databases")',
        },
        {
            content: "Open the refused database",
            trigger: '.o_list_view .o_data_row td:contains("Staging copy")',
        },
        {
            content: "The form says why it is refused and how to fix it",
            trigger: '.o_form_view .alert-danger:contains("Refused"):contains("How to fix")',
            isCheck: true,
        },
    ],
});

registry.category("web_tour.tours").add("iot_https_connect_box", {
    test: true,
    url: "/web",
    steps: () => [
        ...openIotApp(),
        {
            content: "Open Connect a box",
            trigger: '.o_main_navbar a:contains("Connect a box"), .o_main_navbar button:contains("Connect a box")',
        },
        {
            content: "The dialog shows the pairing string URL|TOKEN|DB_UUID|ENTERPRISE_CODE",
            trigger: '.o_field_widget[name="pairing_string"]',
            run() {
                const field = document.querySelector('.modal .o_field_widget[name="pairing_string"]');
                // The widget shows the string and a Copy button.
                const shown = (field.querySelector("input")?.value || field.textContent).trim().replace(/Copy$/, "");
                if (!/^https?:\/\/[^|]+\|tour-pairing-token\|shop-db-uuid\|SHOP-CODE$/.test(shown.trim())) {
                    throw new Error(`unexpected pairing string: ${shown}`);
                }
            },
        },
    ],
});
