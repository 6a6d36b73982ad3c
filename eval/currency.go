package eval

// minorUnits is the number of decimals a currency's amounts are shown
// with (ISO 4217): two for most, none for the yen or the won, three
// for the dinars of Bahrain, Iraq, Jordan, Kuwait, Libya and Tunisia
// and the Omani rial.
func minorUnits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}
