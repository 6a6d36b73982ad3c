package demo

import (
	"fmt"
	"math"
	"slices"
)

// Shop categories.
const (
	Dinnerware = "dinnerware"
	Teaware    = "teaware"
	Glassware  = "glassware"
	Serveware  = "serveware"
	Cutlery    = "cutlery"
	GiftSets   = "gift sets"
)

// Categories lists the shop's categories.
var Categories = []string{Dinnerware, Teaware, Glassware, Serveware, Cutlery, GiftSets}

// Product is one SKU of the shop's catalog. Prices are in GBP and include
// VAT, as UK shops display them.
type Product struct {
	ID       string  `json:"product_id"`
	SKU      string  `json:"sku"`
	Name     string  `json:"name"`
	Category string  `json:"category"`
	Pattern  string  `json:"pattern,omitempty"` // the collection a piece belongs to; "" for unpatterned goods
	Price    float64 `json:"price"`
	// Consumable goods (loose-leaf tea) are bought again when they run out.
	Consumable bool `json:"consumable,omitempty"`
}

// pattern is a dinnerware collection: every pattern comes in every piece.
type pattern struct {
	name, code string
	mult       float64 // price level against plain stoneware
	popularity float64 // relative chance of being someone's favourite
	trade      bool    // plain enough for cafés and hotels
}

var patterns = []pattern{
	{"Ararat Blue", "AB", 1.0, 3.0, false},
	{"Sevan Mist", "SM", 1.1, 2.0, false},
	{"Garnet Bloom", "GB", 1.2, 1.6, false},
	{"Apricot Grove", "AG", 1.0, 1.4, false},
	{"Dilijan Pine", "DP", 0.95, 1.0, false},
	{"Lori Linen", "LL", 0.85, 1.8, true},
	{"Tatev Stone", "TS", 0.9, 1.5, true},
	{"Yerevan Rose", "YR", 1.15, 1.2, false},
	{"Gyumri Slate", "GS", 0.9, 1.1, true},
	{"Goris Moss", "GM", 0.95, 0.8, false},
	{"Areni Red", "AR", 1.05, 0.9, false},
	{"Saffron Gold", "SG", 1.6, 0.7, false},
	{"Noravank Sand", "NS", 0.9, 0.8, false},
	{"Classic White", "CW", 0.7, 1.5, true},
}

// piece is a shape made in every pattern.
type piece struct {
	name, code, category string
	base                 float64 // price in GBP at mult 1
	setOf                bool    // bought in twos, fours and sixes
}

var pieces = []piece{
	{"Dinner Plate 27cm", "DP27", Dinnerware, 24, true},
	{"Side Plate 21cm", "SP21", Dinnerware, 16, true},
	{"Pasta Bowl", "PB", Dinnerware, 22, true},
	{"Cereal Bowl", "CB", Dinnerware, 18, true},
	{"Teacup", "TC", Teaware, 18, true},
	{"Saucer", "SC", Teaware, 10, true},
	{"Mug", "MG", Teaware, 16, true},
	{"Teapot 1.2L", "TP", Teaware, 68, false},
	{"Milk Jug", "MJ", Teaware, 26, false},
	{"Sugar Bowl", "SB", Teaware, 28, false},
	{"Oval Platter 35cm", "OP", Serveware, 58, false},
	{"Serving Bowl", "SV", Serveware, 48, false},
	{"Cake Stand", "CS", Serveware, 64, false},
	{"Gravy Boat", "GY", Serveware, 42, false},
}

var glassLines = []struct{ name, code string }{
	{"Crystal Cut", "CC"}, {"Sevan Wave", "SW"}, {"Everyday Clear", "EC"}, {"Amber Vintage", "AV"},
}

var glassPieces = []piece{
	{"Wine Glasses (Pair)", "WG2", Glassware, 32, true},
	{"Champagne Flutes (Pair)", "CF2", Glassware, 34, true},
	{"Tumblers (Set of 4)", "TU4", Glassware, 28, false},
	{"Highball Glasses (Set of 4)", "HB4", Glassware, 30, false},
	{"Water Carafe", "WC", Glassware, 36, false},
	{"Decanter", "DC", Glassware, 85, false},
}

var cutleryLines = []struct{ name, code string }{
	{"Classic Steel", "KS"}, {"Hammered Brass", "KB"}, {"Matte Black", "KM"}, {"Brushed Gold", "KG"},
}

var cutleryPieces = []piece{
	{"Dinner Knife", "DK", Cutlery, 9, true},
	{"Dinner Fork", "DF", Cutlery, 8, true},
	{"Dessert Spoon", "DS", Cutlery, 8, true},
	{"Teaspoon", "TS", Cutlery, 6, true},
	{"5-Piece Place Setting", "P5", Cutlery, 36, true},
	{"24-Piece Cutlery Set", "S24", Cutlery, 150, false},
}

var teas = []struct {
	name, code string
	price      float64
}{
	{"Mountain Thyme Tea 100g", "MT", 8.5},
	{"Armenian Herbal Blend 100g", "AH", 9.5},
	{"Rosehip & Apricot Tea 100g", "RA", 8.5},
	{"Earl Grey Imperial 125g", "EG", 9},
	{"English Breakfast 250g", "EB", 11},
	{"Darjeeling First Flush 100g", "DJ", 14},
}

var catalog = buildCatalog()

// Catalog returns the shop's products (a fresh copy), in a fixed order.
func Catalog() []Product { return slices.Clone(catalog) }

// price turns a list price into a shelf price: whole pounds less 5p
// (£23.95), as shops price.
func price(v float64) float64 {
	p := math.Round(v)
	if p >= 5 {
		p -= 0.05
	}
	return math.Round(p*100) / 100
}

func buildCatalog() []Product {
	var ps []Product
	add := func(sku, name, category, pat string, p float64, consumable bool) {
		ps = append(ps, Product{
			ID:  fmt.Sprintf("%d", 700101+len(ps)),
			SKU: sku, Name: name, Category: category, Pattern: pat,
			Price: price(p), Consumable: consumable,
		})
	}
	for _, pat := range patterns {
		for _, pc := range pieces {
			add(pat.code+"-"+pc.code, pat.name+" "+pc.name, pc.category, pat.name, pc.base*pat.mult, false)
		}
	}
	for _, gl := range glassLines {
		for _, pc := range glassPieces {
			add("GL-"+gl.code+"-"+pc.code, gl.name+" "+pc.name, pc.category, "", pc.base, false)
		}
	}
	for i, cl := range cutleryLines {
		for _, pc := range cutleryPieces {
			add("CT-"+cl.code+"-"+pc.code, cl.name+" "+pc.name, pc.category, "", pc.base*(1+0.2*float64(i)), false)
		}
	}
	for _, t := range teas {
		add("TEA-"+t.code, t.name, Teaware, "", t.price, true)
	}
	// Gift sets: the popular patterns boxed for giving, and a few mixed boxes.
	for _, pat := range patterns[:10] {
		add(pat.code+"-GTT", pat.name+" Tea for Two Gift Set", GiftSets, pat.name, 110*pat.mult, false)
		add(pat.code+"-GBF", pat.name+" Breakfast for Two Gift Set", GiftSets, pat.name, 70*pat.mult, false)
	}
	for _, pat := range patterns[:4] {
		add(pat.code+"-G16", pat.name+" 16-Piece Dinner Set", GiftSets, pat.name, 320*pat.mult, false)
	}
	add("GS-WINE", "Wine Lover's Gift Set", GiftSets, "", 68, false)
	add("GS-TEA", "Afternoon Tea Hamper", GiftSets, "", 95, false)
	add("GS-TASTE", "Tea Tasting Gift Box", GiftSets, "", 32, false)
	return ps
}

// shopIndex groups catalog positions for quick picking.
type shopIndex struct {
	byCategory    map[string][]int
	byPatternCat  map[string][]int // pattern+"|"+category
	teas          []int
	tradeProducts []int  // what cafés and hotels buy by the dozen
	set           []bool // by catalog position: usually bought several at a time
}

func newShopIndex() *shopIndex {
	x := &shopIndex{byCategory: map[string][]int{}, byPatternCat: map[string][]int{}}
	trade := map[string]bool{}
	for _, p := range patterns {
		trade[p.name] = p.trade
	}
	x.set = make([]bool, len(catalog))
	for i, p := range catalog {
		x.set[i] = setOf(p)
		if p.Consumable {
			x.teas = append(x.teas, i)
			continue
		}
		x.byCategory[p.Category] = append(x.byCategory[p.Category], i)
		if p.Pattern != "" {
			k := p.Pattern + "|" + p.Category
			x.byPatternCat[k] = append(x.byPatternCat[k], i)
		}
		if (trade[p.Pattern] && p.Category != GiftSets) || p.Category == Glassware && p.Price < 40 || p.Category == Cutlery && p.Price < 20 {
			x.tradeProducts = append(x.tradeProducts, i)
		}
	}
	return x
}

// setOf reports whether a product is usually bought several at a time.
func setOf(p Product) bool {
	for _, pc := range pieces {
		if pc.setOf && p.Pattern != "" && p.Category != GiftSets && hasSuffix(p.SKU, "-"+pc.code) {
			return true
		}
	}
	for _, pc := range append(slices.Clone(glassPieces), cutleryPieces...) {
		if pc.setOf && hasSuffix(p.SKU, "-"+pc.code) {
			return true
		}
	}
	return false
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }
