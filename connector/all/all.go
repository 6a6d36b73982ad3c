// Package all registers every built-in connector. Import it for its side
// effects where connectors are created (the server, the CLI):
//
//	import _ "github.com/kiln-cdp/kiln/connector/all"
package all

import (
	// Each package registers itself in init.
	_ "github.com/kiln-cdp/kiln/connector/activecampaign"
	_ "github.com/kiln-cdp/kiln/connector/braze"
	_ "github.com/kiln-cdp/kiln/connector/brevo"
	_ "github.com/kiln-cdp/kiln/connector/customerio"
	_ "github.com/kiln-cdp/kiln/connector/hubspot"
	_ "github.com/kiln-cdp/kiln/connector/intercom"
	_ "github.com/kiln-cdp/kiln/connector/iterable"
	_ "github.com/kiln-cdp/kiln/connector/klaviyo"
	_ "github.com/kiln-cdp/kiln/connector/mailchimp"
	_ "github.com/kiln-cdp/kiln/connector/segment"
	_ "github.com/kiln-cdp/kiln/connector/sendgrid"
	_ "github.com/kiln-cdp/kiln/connector/shopify"
)
