"""The texts of ``lowbit bench models`` (written for it): 32 short sentences, one of about 12
tokens, 8 long texts and calibration sentences that are never timed."""

#: 32 short sentences, 1 to 25 words
SHORT = [
    "Hi!",
    "Done.",
    "Coffee?",
    "Lights off, please.",
    "Where are my keys?",
    "The kettle is boiling.",
    "Our flight lands at noon.",
    "Can you send me the invoice?",
    "Rainy days make the garden grow.",
    "The library stays open late on Fridays.",
    "I forgot to water the plants again this week.",
    "Two tickets for the evening show, please.",
    "The bakery on the corner sells warm croissants every morning.",
    "Penguins cannot fly, but they are excellent swimmers.",
    "Please restart the router if the connection keeps dropping.",
    "My brother adopted a grey kitten from the animal shelter.",
    "The committee will publish its final report in early spring.",
    "A sudden gust of wind knocked the umbrella out of her hand.",
    "Backups run every night at two, and they are kept for thirty days.",
    "The violinist tuned her instrument while the audience found their seats.",
    "Fresh snow covered the mountain pass, so the road was closed until noon.",
    "He wrote a short script that renames thousands of holiday photos by date.",
    "Traffic on the bridge was slow because one lane was closed for repairs.",
    "The soup needs more salt, a little pepper and a handful of chopped parsley.",
    "Volunteers cleaned the beach on Saturday and collected forty bags of plastic waste.",
    "When the power failed, the hospital switched to its generators within seconds.",
    "Our neighbours are building a wooden treehouse for their twins in the old oak tree.",
    "The spacecraft sent back detailed images of the icy moon's cracked and frozen surface.",
    "Before you submit the form, check that your address and phone number are written correctly.",
    "The orchestra rehearsed the symphony for six weeks before the premiere in the cathedral last night.",
    "If the package does not arrive by Thursday, the shop promises a full refund or a free replacement.",
    "The farmers' market moved to the square behind the town hall, where there is more room for stalls and parking.",
]

#: about 12 tokens
ONE = "The museum guide explained how the ancient bridge was built."

#: 8 long texts, each over 128 tokens (truncated to 128)
LONG = [
    "The city council met on Tuesday evening to discuss the new plan for public transport. "
    "After a long debate, the members agreed to extend the tram line to the northern suburbs, "
    "to add night buses on weekends, and to replace the oldest vehicles with electric ones over "
    "the next five years. Residents who spoke at the meeting welcomed the plan but asked for "
    "more bicycle parking near the stations, safer crossings for children walking to school, "
    "and clearer timetables at every stop. The mayor promised a public consultation in the "
    "autumn and a first progress report before the end of the year. Local shops near the new "
    "stops hope that the extra passengers will bring more customers on weekday evenings.",
    "To bake a simple loaf of bread, mix five hundred grams of flour with a teaspoon of salt and "
    "a sachet of dried yeast. Add about three hundred millilitres of warm water and knead the "
    "dough for ten minutes until it feels smooth and elastic. Cover the bowl with a damp towel "
    "and leave it somewhere warm for an hour, or until the dough has doubled in size. Shape it "
    "into a loaf, let it rise for another half hour, then bake it in a hot oven for thirty to "
    "thirty-five minutes. The bread is ready when it sounds hollow if you tap the bottom. Let it "
    "cool on a rack for at least an hour before slicing, or the crumb will be sticky.",
    "Our monitoring system raised an alert at three in the morning because the response time of "
    "the payment service had tripled. The engineer on call found that a database index had been "
    "dropped during a migration the previous afternoon, so every lookup scanned the whole table. "
    "She recreated the index, the latency went back to normal within minutes, and no payments "
    "were lost. In the review the next day, the team decided to run migrations through a "
    "checklist, to test them on a copy of production data, and to add an alert on slow queries "
    "so that the problem would be caught earlier next time. They also wrote a short guide for "
    "new engineers explaining how to read the dashboards during an incident.",
    "The expedition left the coastal village at dawn and followed the river inland for three "
    "days. The guides chose a path through dense forest, where the air was humid and the ground "
    "was covered in roots and fallen branches. On the fourth day the group reached a plateau "
    "with a view over the whole valley, and the botanists began collecting samples of plants "
    "that had never been described before. They recorded the exact position of each specimen, "
    "photographed the leaves and flowers, and packed everything carefully for the long journey "
    "back to the laboratory at the university. Months later, three of the samples turned out to "
    "belong to a species of orchid that nobody had recorded in the region before.",
    "Learning a new language as an adult takes patience, but a few habits make it much easier. "
    "Practise a little every day instead of a lot once a week, because short regular sessions "
    "help you remember words for longer. Listen to podcasts or the radio while cooking or "
    "commuting, even if you understand only part of what is said. Find a conversation partner, "
    "online or in person, and do not be afraid of making mistakes. Read children's books or "
    "simple news articles, write a short diary, and review the words you found difficult at the "
    "end of every week. Above all, choose material you actually enjoy, because curiosity keeps "
    "you going on the days when progress feels slow and the grammar seems impossible.",
    "The museum's new exhibition traces the history of timekeeping from sundials and water "
    "clocks to the atomic clocks that keep satellites in sync today. Visitors can see a "
    "seventeenth-century pendulum clock, a pocket watch that survived a shipwreck, and the "
    "workshop of a local clockmaker, rebuilt piece by piece with his original tools. One room "
    "explains how sailors used precise chronometers to find their longitude at sea, and another "
    "lets children build a simple clock from gears and springs. The exhibition is open every day "
    "except Monday until the end of March. Guided tours in English and French start at eleven "
    "and at three, and tickets are free for students and visitors under eighteen.",
    "Before the match, the coach gathered the players in the changing room and reminded them of "
    "the plan they had practised all week. They would press high in the first twenty minutes, "
    "keep the ball on the wings, and wait for the other team to tire in the second half. The "
    "stadium was full and the noise was incredible when the teams walked onto the pitch. The "
    "home side scored early from a corner, conceded a penalty just before half time, and won "
    "the game with a long shot from the captain in the last minute, which sent the supporters "
    "into celebrations that lasted well into the night. The next morning the local newspaper "
    "printed a photograph of the goal across the whole front page.",
    "Solar panels convert sunlight into electricity using layers of silicon that release "
    "electrons when they absorb light. A typical panel on a house produces direct current, which "
    "an inverter turns into the alternating current used by household appliances. The amount of "
    "energy depends on the angle of the roof, the season, the weather and any shade from trees "
    "or nearby buildings. Many households add a battery so that the energy produced at midday "
    "can be used in the evening, and some sell their surplus back to the grid. Panels usually "
    "last twenty-five years or more with very little maintenance. Cleaning them once or twice a "
    "year and checking the wiring keeps them close to their original output.",
]

#: calibration sentences for lowbit's int8 encoder, if it asks for any (not the timed ones)
CALIB = [
    "Good evening.", "Thanks a lot!", "Is the shop still open?", "The printer is jammed again.",
    "We walked along the canal until the sun went down.",
    "Please bring a towel, sunscreen and something to drink.",
    "The kids spent the whole afternoon building a fort out of cardboard boxes.",
    "A new study suggests that regular walks improve sleep quality in older adults.",
    "The train was cancelled, so we shared a taxi with two strangers to the airport.",
    "Update your browser to the latest version to fix the security issue.",
    "Wow.", "See you on Monday.", "Which platform does the express leave from?",
    "The old mill by the river has been turned into a small museum about local history.",
    "I would like to book a table for four people at seven thirty tomorrow evening.",
    "The report shows that energy use in the office fell by a fifth after the renovation.",
]
