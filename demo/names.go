package demo

import (
	"fmt"
	"strings"
)

var ukFirst = []string{
	"Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Emily", "Sophie", "Charlotte", "Lucy",
	"Hannah", "Ella", "Freya", "Poppy", "Ruby", "Alice", "Eleanor", "Harriet", "Margaret", "Susan",
	"Helen", "Sarah", "Claire", "Rachel", "Joanne", "Priya", "Aisha", "Fatima", "Zara", "Anahit",
	"Oliver", "George", "Harry", "Jack", "Thomas", "James", "William", "Samuel", "Daniel", "David",
	"Richard", "Peter", "Andrew", "Mark", "Paul", "Rohan", "Omar", "Ibrahim", "Aram", "Tigran",
}

var ukLast = []string{
	"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
	"Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke",
	"Patel", "Khan", "Hughes", "Edwards", "Lewis", "Harris", "Martin", "Cooper", "Ward", "Turner",
	"Hill", "Moore", "Baker", "Carter", "Shaw", "Ahmed", "Begum", "Murphy", "Kelly", "Campbell",
	"Stewart", "Scott", "Morris", "Price", "Bennett", "Gray", "Sargsyan", "Petrosyan", "Hovhannisyan", "Ali",
}

var laFirst = []string{
	"Ani", "Lilit", "Mariam", "Nare", "Arpi", "Lusine", "Gayane", "Sona", "Talin", "Nairi",
	"Sofia", "Isabella", "Camila", "Emma", "Olivia", "Grace", "Hannah", "Jasmine", "Michelle", "Jennifer",
	"Aram", "Armen", "Davit", "Narek", "Hayk", "Tigran", "Vahe", "Raffi", "Hovik", "Gor",
	"Daniel", "Michael", "David", "Jose", "Carlos", "Kevin", "Brian", "Jason", "Ethan", "Andrew",
}

var laLast = []string{
	"Petrosyan", "Sargsyan", "Hakobyan", "Grigoryan", "Karapetyan", "Avetisyan", "Khachatryan", "Mkrtchyan",
	"Harutyunyan", "Vardanyan", "Arakelian", "Manoukian", "Boyajian", "Keshishian", "Ohanian", "Baghdasaryan",
	"Gevorgyan", "Ghazaryan", "Mardirossian", "Tashjian", "Garcia", "Hernandez", "Lopez", "Martinez",
	"Kim", "Nguyen", "Lee", "Smith", "Johnson", "Williams", "Chen", "Rodriguez", "Brown", "Davis", "Park",
}

// ukPlaces are UK towns with a postcode district, for addresses (no street
// addresses: the demo never names a real home).
var ukPlaces = []struct{ city, district string }{
	{"London", "SW11"}, {"London", "N16"}, {"London", "E8"}, {"London", "SE22"}, {"Manchester", "M20"},
	{"Leeds", "LS6"}, {"York", "YO10"}, {"Bristol", "BS6"}, {"Edinburgh", "EH10"}, {"Glasgow", "G12"},
	{"Birmingham", "B13"}, {"Sheffield", "S11"}, {"Harrogate", "HG1"}, {"Bath", "BA1"}, {"Norwich", "NR2"},
	{"Cambridge", "CB1"}, {"Oxford", "OX4"}, {"Cardiff", "CF11"}, {"Brighton", "BN1"}, {"Newcastle", "NE2"},
	{"Nottingham", "NG7"}, {"Liverpool", "L17"}, {"Exeter", "EX4"}, {"Stoke-on-Trent", "ST4"}, {"Belfast", "BT9"},
}

var businessKinds = []struct{ kind, industry string }{
	{"Tea Room", "hospitality"}, {"Café", "hospitality"}, {"Hotel", "hospitality"}, {"Bistro", "hospitality"},
	{"Bed & Breakfast", "hospitality"}, {"Catering Co.", "catering"}, {"Events Ltd", "events"}, {"Gastropub", "hospitality"},
}

var businessFirst = []string{
	"The Old Vicarage", "Harbour View", "The Copper Kettle", "Willow", "The Orangery", "Bluebell", "The Granary",
	"Ivy House", "The Mill", "Rosemary", "Lakeside", "The Larder", "Primrose", "The Crown", "Juniper", "Saffron",
}

var giftMessages = []string{
	"Happy birthday! Love from us all x",
	"Congratulations on your new home!",
	"Merry Christmas, with love",
	"For Mum, with love on Mother's Day",
	"Happy anniversary to you both",
	"Wishing you a wonderful wedding day",
	"Thank you for everything",
	"A little something for your tea breaks",
	"Happy retirement!",
	"Welcome to the family",
}

var feedbackComments = [6][]string{
	1: {"Waited over an hour for our mains.", "Food arrived cold and nobody checked on us.", "Very disappointing visit."},
	2: {"Khorovats was dry this time.", "Service was slow and the room was too loud.", "Not as good as it used to be."},
	3: {"Good food, service a bit slow.", "Fine, but the lahmajun was not as crisp as usual.", "OK evening."},
	4: {"Lovely meal, the manti were great.", "Friendly staff and great dolma.", "Good value, will be back."},
	5: {"Best khorovats in LA!", "Wonderful evening, the gata is a must.", "Perfect as always, thank you.", "The ghapama was unforgettable."},
}

// localPart makes the part before "@" of a person's email address; n keeps
// addresses unique.
func localPart(first, last string, n int, style int) string {
	f, l := strings.ToLower(first), strings.ToLower(last)
	switch style % 4 {
	case 0:
		return fmt.Sprintf("%s.%s%d", f, l, n)
	case 1:
		return fmt.Sprintf("%s%s%d", f[:1], l, n)
	case 2:
		return fmt.Sprintf("%s_%s.%d", f, l, n)
	}
	return fmt.Sprintf("%s%d.%s", f, n, l)
}
